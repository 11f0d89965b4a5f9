"""The live page: one self-contained page, served by the gateway, showing this worker's telemetry over the last
fifteen minutes (:mod:`app.telemetry.timeline`), its objectives, readiness and variant reports."""
