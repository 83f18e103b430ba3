"""Layer 4, observability: online evaluators on every finished run (more to come: offline
evals, SLO burn-rate alerts, traces)."""
