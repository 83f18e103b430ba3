"""Layer 4, observability: evaluation and alerting processors over the event log."""
