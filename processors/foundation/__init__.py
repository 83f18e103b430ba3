"""Layer 1, foundation: provider-agnostic LLM calls with routing, caching, guardrails, budgets."""
