"""The fault-injection suite: load, a fault, then counts from the topics (docs/RELIABILITY.md)."""
