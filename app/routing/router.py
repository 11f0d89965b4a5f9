"""Which variant serves a request that names none, by the model's ``routing`` policy in ``model.yaml``.

- ``default``: the default variant.
- ``weighted``: an A/B split by share; a request carrying a routing key (header ``servometer-routing-key``)
  always lands on the same variant, so one user sees one variant.
- ``shadow``: the default variant serves; a copy goes to the candidate (see :mod:`app.routing.shadow`).
- ``fastest_within``: the fastest variant (median latency at batch 1, from the variant report) whose quality loss
  against the reference is within ``tolerance``; the default variant until a report exists.

Only variants that are ready are chosen; when a chosen one is not, the default variant serves.
"""

import hashlib
import random

from app.repository.registry import ModelEntry, VariantState
from app.schema.manifest import ModelManifest, RoutingSpec
from app.variants.latest_reports import VariantReports

ROUTING_KEY_HEADER = "servometer-routing-key"


class Router:
    def __init__(self, reports: VariantReports, rng: random.Random | None = None) -> None:
        self.reports = reports
        self._rng = rng or random.Random()

    def choose(self, entry: ModelEntry, routing_key: str | None) -> str | None:
        """The variant name to serve, or None for the default variant."""
        manifest = entry.manifest
        if manifest is None:
            return None
        routing = manifest.routing
        if routing.policy in ("default", "shadow"):  # the common case, on every request: nothing to compute
            return None
        ready = {name for name, v in entry.variants.items() if v.state is VariantState.READY}
        if routing.policy == "weighted":
            chosen: str | None = self._weighted(routing, routing_key)
        else:
            chosen = self._fastest(manifest, ready)
        return chosen if chosen in ready else None

    def _weighted(self, routing: RoutingSpec, routing_key: str | None) -> str:
        shares = [(name, share) for name, share in routing.weights.items() if share > 0]
        total = sum(share for _, share in shares)
        if routing_key is None:
            point = self._rng.random() * total
        else:  # the same key, the same point: sticky without any state
            digest = hashlib.sha256(routing_key.encode()).digest()
            point = int.from_bytes(digest[:8], "big") / 2**64 * total
        for name, share in shares:
            point -= share
            if point < 0:
                return name
        return shares[-1][0]

    def _fastest(self, manifest: ModelManifest, ready: set[str]) -> str | None:
        report = self.reports.latest(manifest.name)
        if report is None:
            return None
        return report.fastest_within(manifest.routing.tolerance, ready)
