#!/usr/bin/env bash
# Makes the gateway benchmark's own environment, outside the project's dependencies:
#   bench/gateway/.venv          LiteLLM proxy, the fake upstream, the load generator, the plot
#   bench/gateway/node_modules   the Portkey gateway (pinned by package-lock.json)
# Needs python3 (3.11+) and node/npm (18+). Our platform runs from the project's .venv (./dev).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements.txt constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q -U pip
  .venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
  rm -f .venv/.installed-* && touch "$stamp"
fi

# --ignore-scripts: the gateway's only install script is patch-package, with no patches shipped.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

echo "bench/gateway ready: python bench/gateway/run.py --help"
