"""The ``tokenize`` step: UTF-8 text into token ids and an attention mask, with Hugging Face ``tokenizers``."""

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from app.runtimes.base import RuntimeLoadError
from app.schema.steps import TokenizeStep

Tensors = dict[str, np.ndarray]


class Tokenize:
    def __init__(self, spec: TokenizeStep, folder: Path) -> None:
        path = folder / spec.file
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the library raises plain Exceptions for a missing or malformed file
            raise RuntimeLoadError(f"tokenize step: cannot load {spec.file}: {exc}") from None
        tokenizer.enable_truncation(max_length=spec.max_length)
        # Padding is the pipeline's: each model call pads to its own longest text, not the whole batch's.
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.spec = spec
        self.pad_id = _pad_id(tokenizer)

    def __call__(self, tensors: Tensors) -> Tensors:
        spec = self.spec
        texts = [_text(item) for item in tensors[spec.input].reshape(-1)]
        # One Rust call for the batch, with the GIL released: the event loop keeps serving meanwhile. The fast
        # variant skips character offsets, which nothing here reads (a third of a short text's tokenizing).
        rows = [encoding.ids for encoding in self._tokenizer.encode_batch_fast(texts)]
        counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        width = int(counts.max(initial=1))
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        for row, tokens in enumerate(rows):
            ids[row, : len(tokens)] = tokens
        mask = (np.arange(width) < counts[:, None]).astype(np.int64)
        return {spec.ids: ids, spec.mask: mask, spec.count: counts}


def _text(item: object) -> str:
    # Requests were checked to hold UTF-8 (app.validation): strict decoding cannot fail here.
    return item.decode("utf-8") if isinstance(item, bytes) else str(item)


def _pad_id(tokenizer: Tokenizer) -> int:
    padding = tokenizer.padding
    if padding is not None:
        return int(padding["pad_id"])
    found = tokenizer.token_to_id("[PAD]")
    return 0 if found is None else found
