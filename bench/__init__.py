"""Benchmarks: raw model limits, Servometer under load, and a hand-written baseline."""
