"""Layer 2, orchestration: multi-step workflows and multi-agent runs as commands and events."""
