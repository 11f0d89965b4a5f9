"""Check a decoded request against the model's declared inputs and outputs before it reaches a model."""

from app.errors import InvalidRequest
from app.protocol.codec import DecodedRequest
from app.repository.manifest import ModelManifest


def check_request(manifest: ModelManifest, request: DecodedRequest) -> None:
    """Raise :class:`InvalidRequest` naming the input, what was expected and what came."""
    declared = {spec.name: spec for spec in manifest.inputs}
    given = {tensor.name for tensor in request.inputs}
    missing = [name for name in declared if name not in given]
    if missing:
        raise InvalidRequest(f"model '{manifest.name}' needs inputs {missing}; the request lacks them")
    unexpected = sorted(given - set(declared))
    if unexpected:
        raise InvalidRequest(f"model '{manifest.name}' has no inputs {unexpected}; its inputs are {list(declared)}")
    batch_sizes = set()
    for tensor in request.inputs:
        spec = declared[tensor.name]
        if tensor.datatype != spec.datatype:
            raise InvalidRequest(f"input '{tensor.name}': expected datatype {spec.datatype}, got {tensor.datatype}")
        shape = tensor.shape
        if len(shape) != len(spec.shape) or any(
            want != -1 and have != want for have, want in zip(shape, spec.shape, strict=True)
        ):
            raise InvalidRequest(f"input '{tensor.name}': expected shape {spec.shape}, got {list(shape)}")
        for axis, (have, limit) in enumerate(zip(shape, spec.bounds(), strict=True)):
            if limit != -1 and have > limit:
                raise InvalidRequest(f"input '{tensor.name}': dimension {axis} is {have}, at most {limit} is allowed")
        batch_sizes.add(shape[0])
    limit = manifest.batching.max_batch_size
    if limit > 1:
        if len(batch_sizes) > 1:
            raise InvalidRequest(f"inputs disagree on the batch size (first dimension): {sorted(batch_sizes)}")
        (batch,) = batch_sizes
        if batch > limit:
            raise InvalidRequest(f"batch size {batch} exceeds model '{manifest.name}' max_batch_size {limit}")
    if request.outputs is not None:
        outputs = [spec.name for spec in manifest.outputs]
        for output in request.outputs:
            if output.name not in outputs:
                raise InvalidRequest(
                    f"model '{manifest.name}' has no output '{output.name}'; its outputs are {outputs}"
                )
