"""Where BEIR SciFact is (``../shared/data/scifact`` beside the repository on the machines this
project is built on, or ``SCIFACT_DATA``), for the layer 3 benchmarks and their test floors."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["scifact_dir"]

_BESIDE_REPO = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
_MACHINE = Path("/work/shared/data/scifact")  # where a clone elsewhere (CI's) finds it


def scifact_dir() -> Path:
    """``SCIFACT_DATA`` when set, else the first of the known places that exists."""
    chosen = os.environ.get("SCIFACT_DATA")
    if chosen:
        return Path(chosen)
    return next((p for p in (_BESIDE_REPO, _MACHINE) if p.is_dir()), _BESIDE_REPO)
