"""Tensors as a model.yaml declares them: what clients send and get, and what a model file takes and returns."""

from pathlib import PurePosixPath
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.protocol.datatypes import DATATYPES, numpy_dtype

Dim = Annotated[int, Field(ge=-1)]


class StrictModel(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(StrictModel):
    name: str = Field(min_length=1)
    datatype: str
    shape: list[Dim] = Field(min_length=1)
    max_shape: list[Dim] | None = None
    """Upper bounds for dynamic dimensions (-1: unbounded), e.g. a model's longest token sequence."""
    finite_only: bool = False
    """Inputs only: refuse NaN and Inf (400) instead of handing them to the model."""
    value_range: tuple[float, float] | None = None
    """Inputs only: the lowest and highest value the model accepts (e.g. token ids within the vocabulary); other
    values are refused with 400 rather than reaching the runtime, which would fail the whole batch."""
    same_shape_as: str | None = None
    """Inputs only: another input this one must match in shape (an attention mask and its token ids), so a mismatch
    is the client's 400 instead of a failure inside the model."""

    @field_validator("datatype")
    @classmethod
    def _known_datatype(cls, value: str) -> str:
        if value not in DATATYPES:
            raise ValueError(f"unknown datatype '{value}'; expected one of {', '.join(DATATYPES)}")
        return value

    @field_validator("shape")
    @classmethod
    def _no_zero_dims(cls, value: list[int]) -> list[int]:
        if 0 in value:
            raise ValueError("dimensions are positive sizes or -1 (dynamic)")
        return value

    @model_validator(mode="after")
    def _max_shape_fits(self) -> "TensorSpec":
        if self.max_shape is not None and (len(self.max_shape) != len(self.shape) or 0 in self.max_shape):
            raise ValueError(
                f"max_shape {self.max_shape} must have one positive size or -1 per dimension of {self.shape}"
            )
        return self

    @field_validator("value_range")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] <= value[1]:
            raise ValueError(f"value_range [{value[0]}, {value[1]}] must list the lowest value first")
        return value

    def example(self) -> np.ndarray:
        """The smallest tensor this input accepts: one sample, every dynamic dimension 1, every value 1 (or the
        nearest value inside ``value_range``; ones rather than zeros, so attention masks select something)."""
        shape = [1 if dim == -1 else dim for dim in self.shape]
        if self.datatype == "BYTES":
            return np.full(shape, b"1", dtype=np.object_)
        low, high = self.value_range or (1, 1)
        return np.full(shape, min(max(1, low), high), dtype=numpy_dtype(self.datatype))

    def bounds(self) -> list[int]:
        """Per dimension, the largest size allowed (-1: any)."""
        fixed = self.max_shape or [-1] * len(self.shape)
        return [want if want != -1 else limit for want, limit in zip(self.shape, fixed, strict=True)]


def relative_file(value: str) -> str:
    """``value`` if it is a relative path that stays inside the model's folder; ValueError otherwise."""
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value or "://" in value:
        raise ValueError("must be a relative path inside the model's folder (no '..', no URL)")
    return value
