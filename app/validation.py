"""Check a decoded request against the model's declared inputs and outputs before it reaches a model."""

import numpy as np

from app.errors import InvalidRequest
from app.protocol.codec import DecodedRequest
from app.repository.manifest import ModelManifest


class RequestCheck:
    """The checks for one model, prepared once: they run on every request."""

    def __init__(self, manifest: ModelManifest) -> None:
        self.model = manifest.name
        self._inputs = {spec.name: (spec.datatype, spec.shape, spec.bounds()) for spec in manifest.inputs}
        self._finite = [spec.name for spec in manifest.inputs if spec.finite_only and spec.datatype.startswith("FP")]
        self._outputs = [spec.name for spec in manifest.outputs]
        self._max_batch = manifest.batching.max_batch_size if manifest.batching.enabled else 0

    def __call__(self, request: DecodedRequest) -> None:
        """Raise :class:`InvalidRequest` naming the input, what was expected and what came."""
        if len(request.inputs) != len(self._inputs) or any(t.name not in self._inputs for t in request.inputs):
            self._name_mismatch(request)
        batch_sizes = set()
        for tensor in request.inputs:
            datatype, shape, bounds = self._inputs[tensor.name]
            if tensor.datatype != datatype:
                raise InvalidRequest(f"input '{tensor.name}': expected datatype {datatype}, got {tensor.datatype}")
            have = tensor.shape
            if len(have) != len(shape) or any(want not in (-1, size) for size, want in zip(have, shape, strict=True)):
                raise InvalidRequest(f"input '{tensor.name}': expected shape {shape}, got {list(have)}")
            for axis, (size, limit) in enumerate(zip(have, bounds, strict=True)):
                if limit != -1 and size > limit:
                    raise InvalidRequest(
                        f"input '{tensor.name}': dimension {axis} is {size}, at most {limit} is allowed"
                    )
            batch_sizes.add(have[0])
        if self._max_batch:
            if len(batch_sizes) > 1:
                raise InvalidRequest(f"inputs disagree on the batch size (first dimension): {sorted(batch_sizes)}")
            (batch,) = batch_sizes
            if batch > self._max_batch:
                raise InvalidRequest(
                    f"batch size {batch} exceeds model '{self.model}' max_batch_size {self._max_batch}"
                )
        if self._finite:
            self._check_finite(request)
        for output in request.outputs or ():
            if output.name not in self._outputs:
                raise InvalidRequest(
                    f"model '{self.model}' has no output '{output.name}'; its outputs are {self._outputs}"
                )

    def _check_finite(self, request: DecodedRequest) -> None:
        for tensor in request.inputs:
            if tensor.name in self._finite and not np.isfinite(tensor.array).all():
                bad = int(np.count_nonzero(~np.isfinite(tensor.array)))
                raise InvalidRequest(
                    f"input '{tensor.name}': expected finite numbers, got {bad} NaN or Inf values "
                    f"(model '{self.model}' declares finite_only)"
                )

    def _name_mismatch(self, request: DecodedRequest) -> None:
        given = {tensor.name for tensor in request.inputs}
        missing = [name for name in self._inputs if name not in given]
        if missing:
            raise InvalidRequest(f"model '{self.model}' needs inputs {missing}; the request lacks them")
        unexpected = sorted(given - set(self._inputs))
        raise InvalidRequest(f"model '{self.model}' has no inputs {unexpected}; its inputs are {list(self._inputs)}")
