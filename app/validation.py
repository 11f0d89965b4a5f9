"""Check a decoded request against the model's declared inputs and outputs before it reaches a model."""

import math

import numpy as np

from app.errors import InvalidRequest
from app.protocol.codec import DecodedRequest
from app.schema.manifest import ModelManifest


def most_values(manifest: ModelManifest) -> int | None:
    """The most values (numbers or strings) a valid request to the model carries; None when a dimension is
    unbounded (no ``max_shape``) or an input is text, whose elements are not numbers."""
    max_batch = manifest.batching.max_batch_size if manifest.batching.enabled else 0
    total = 0
    for spec in manifest.inputs:
        bounds = spec.bounds()
        if max_batch:
            bounds[0] = max_batch
        if spec.datatype == "BYTES" or -1 in bounds:
            return None
        total += math.prod(bounds)
    return total


class RequestCheck:
    """The checks for one model, prepared once: they run on every request."""

    def __init__(self, manifest: ModelManifest) -> None:
        self.model = manifest.name
        self._inputs = {spec.name: (spec.datatype, spec.shape, spec.bounds()) for spec in manifest.inputs}
        self._finite = [spec.name for spec in manifest.inputs if spec.finite_only and spec.datatype.startswith("FP")]
        self._ranges = {spec.name: spec.value_range for spec in manifest.inputs if spec.value_range is not None}
        self._outputs = [spec.name for spec in manifest.outputs]
        self._max_batch = manifest.batching.max_batch_size if manifest.batching.enabled else 0
        self._same_shape = [(spec.name, spec.same_shape_as) for spec in manifest.inputs if spec.same_shape_as]
        self._texts = manifest.text_inputs
        self.max_values = most_values(manifest)
        """The most numbers a valid request carries (None: unbounded, or text inputs)."""

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
                if size == 0:
                    # Nothing to compute: a batch of zero samples would never be dispatched, and a zero-length
                    # sequence makes the runtime fail.
                    raise InvalidRequest(
                        f"input '{tensor.name}': dimension {axis} is 0; every dimension must be 1 or more"
                    )
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
        if self._same_shape:
            shapes = {tensor.name: tensor.shape for tensor in request.inputs}
            for name, other in self._same_shape:
                if shapes[name] != shapes[other]:
                    raise InvalidRequest(
                        f"input '{name}': expected the shape of input '{other}' {list(shapes[other])}, "
                        f"got {list(shapes[name])}"
                    )
        if self._finite:
            self._check_finite(request)
        if self._ranges:
            self._check_ranges(request)
        if self._texts:
            self._check_text(request)
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

    def _check_ranges(self, request: DecodedRequest) -> None:
        for tensor in request.inputs:
            value_range = self._ranges.get(tensor.name)
            if value_range is None:
                continue
            low, high = value_range
            array = tensor.array
            smallest, largest = array.min(), array.max()
            if smallest < low or largest > high or np.isnan(smallest) or np.isnan(largest):
                outside = array[~((array >= low) & (array <= high))]
                raise InvalidRequest(
                    f"input '{tensor.name}': values must lie in [{low:g}, {high:g}] (model '{self.model}' declares "
                    f"value_range), got {outside.size} outside it, e.g. {outside.flat[0]}"
                )

    def _check_text(self, request: DecodedRequest) -> None:
        """Text a processing step tokenizes must be UTF-8: binary BYTES may carry anything."""
        for tensor in request.inputs:
            if tensor.name not in self._texts:
                continue
            for index, item in enumerate(tensor.array.flat):
                try:
                    if isinstance(item, bytes):
                        item.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidRequest(
                        f"input '{tensor.name}': element {index} is not UTF-8 text (byte {exc.start} is invalid)"
                    ) from None

    def _name_mismatch(self, request: DecodedRequest) -> None:
        sent = [tensor.name for tensor in request.inputs]
        missing = [name for name in self._inputs if name not in sent]
        unexpected = [name for name in sent if name not in self._inputs]
        problems = []
        if missing:
            problems.append(f"missing {missing}")
        if unexpected:
            problems.append(f"unknown {unexpected}")
        raise InvalidRequest(
            f"model '{self.model}' takes inputs {list(self._inputs)}; the request sent {sent} ({', '.join(problems)})"
        )
