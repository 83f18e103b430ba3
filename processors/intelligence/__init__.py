"""Layer 3, intelligence: retrieval-augmented generation and grounding checks."""
