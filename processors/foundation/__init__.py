"""Layer 1, foundation: provider-agnostic LLM execution with routing, caching, guardrails and budgets."""
