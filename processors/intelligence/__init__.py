"""Layer 3, intelligence: retrieval-augmented generation and grounding checks.

Its processes embed a few texts at a time; OpenBLAS's threads then spin against each other and
against the process's own work (one sentence took 100-780 ms instead of 20 ms on a busy 2-core
machine, measured), so each process uses one BLAS thread unless told otherwise, and scales by
replicas. Set before numpy loads."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
