"""Prometheus telemetry: every metric family in one place, and its exposition."""
