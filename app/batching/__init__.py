"""Dynamic batching: one queue and dispatcher per served variant."""
