"""Servometer: a model-serving gateway with built-in performance telemetry."""

__version__ = "0.1.0"
