"""The processing steps a model.yaml declares around its model (``steps: {before: [...], after: [...]}``).

Clients send the manifest's ``inputs`` and get its ``outputs``; the steps before the model turn the first into
what the model file takes (text into token ids), the steps after it turn what the model returns into what clients
get (logits into class names). Each step names the tensors it reads and makes, so the tensors the model file
must have are known without loading anything (:func:`model_tensors`).
"""

from typing import Annotated, Literal

from pydantic import Field, field_validator

from app.schema.tensors import StrictModel, TensorSpec, relative_file

STEP_PROGRAM = "process.py"
"""A model folder's own step functions (``kind: python``), loaded only when the operator allows model code."""


class _Step(StrictModel):
    """Each step says what it reads (``reads()``) and what it makes (``makes()``)."""

    kind: str


class TokenizeStep(_Step):
    """Text (a BYTES input, UTF-8) into WordPiece / BPE token ids and an attention mask, with the Hugging Face
    ``tokenizers`` library and the tokenizer.json in the model's folder. Longer texts are cut to ``max_length``
    tokens, as sentence-transformers does."""

    kind: Literal["tokenize"]
    input: str
    file: str = "tokenizer.json"
    max_length: int = Field(default=256, ge=2)
    """Tokens kept per text, special tokens included (all-MiniLM-L6-v2: 256)."""
    ids: str = "input_ids"
    mask: str = "attention_mask"
    count: str = "token_count"
    """Tokens per text after truncation: not given to the model, returned when ``outputs`` lists it."""

    @field_validator("file")
    @classmethod
    def _inside_model_folder(cls, value: str) -> str:
        return relative_file(value)

    def reads(self) -> list[str]:
        return [self.input]

    def makes(self) -> list[TensorSpec]:
        return [*self.model_inputs(), TensorSpec(name=self.count, datatype="INT64", shape=[-1])]

    def model_inputs(self) -> list[TensorSpec]:
        bound = [-1, self.max_length]
        return [
            TensorSpec(name=self.ids, datatype="INT64", shape=[-1, -1], max_shape=bound),
            TensorSpec(name=self.mask, datatype="INT64", shape=[-1, -1], max_shape=bound),
        ]


class LabelsStep(_Step):
    """A classifier's scores (``input``: logits or probabilities, one row per sample) into class names, and with
    ``top_k`` the k best classes with their probabilities."""

    kind: Literal["labels"]
    input: str
    classes: list[str] = Field(min_length=2)
    output: str = "class_name"
    top_k: int = Field(default=0, ge=0)
    """0: the best class only; k: also ``top_classes`` and ``top_scores`` (k per sample)."""
    scores: Literal["logits", "probabilities"] = "logits"
    """What ``input`` holds: logits get a softmax for ``top_scores``, probabilities are reported as they are."""
    top_classes: str = "top_classes"
    top_scores: str = "top_scores"

    def reads(self) -> list[str]:
        return [self.input]

    def makes(self) -> list[TensorSpec]:
        made = [TensorSpec(name=self.output, datatype="BYTES", shape=[-1])]
        if self.top_k:
            made.append(TensorSpec(name=self.top_classes, datatype="BYTES", shape=[-1, self.top_k]))
            made.append(TensorSpec(name=self.top_scores, datatype="FP32", shape=[-1, self.top_k]))
        return made


class PythonStep(_Step):
    """A function of the model folder's ``process.py``: named arrays in (a whole batch, one row per sample), named
    arrays out with the same number of rows. Loaded from the repository only, and only with ``allow_model_code``."""

    kind: Literal["python"]
    function: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    inputs: list[str] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)

    def reads(self) -> list[str]:
        return list(self.inputs)

    def makes(self) -> list[TensorSpec]:
        return list(self.outputs)


Step = Annotated[TokenizeStep | LabelsStep | PythonStep, Field(discriminator="kind")]


class StepsSpec(StrictModel):
    before: list[Step] = Field(default_factory=list)
    after: list[Step] = Field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.before or self.after)


def model_tensors(
    steps: StepsSpec, inputs: list[TensorSpec], outputs: list[TensorSpec]
) -> tuple[list[TensorSpec], list[TensorSpec], list[str]]:
    """What the model file takes and returns, given what clients send (``inputs``) and get (``outputs``): the
    tensors it may take (what clients send and the steps before it make, but the text a tokenizer read and what is
    handed on to the outputs), the declared outputs it returns itself, and the names the steps after it read from
    it (their types are the model's own). Raises ValueError when a step reads a tensor nothing makes."""
    available = {spec.name: spec for spec in inputs}
    declared = {spec.name for spec in outputs}
    passed: set[str] = set()  # made before the model and handed past it to the outputs (token counts, checks)
    for step in steps.before:
        _check_reads(step, available, "before")
        if isinstance(step, TokenizeStep):
            available.pop(step.input)  # text never reaches the model
        for spec in step.makes():
            if spec.name in declared or (isinstance(step, TokenizeStep) and spec.name == step.count):
                passed.add(spec.name)
            else:
                available[spec.name] = spec
    made_after = {spec.name for step in steps.after for spec in step.makes()}
    returned = [spec for spec in outputs if spec.name not in made_after and spec.name not in passed]
    read_after: list[str] = []
    later = {spec.name for spec in returned}
    for step in steps.after:
        for name in step.reads():
            if name not in later and name not in read_after:
                read_after.append(name)
        later.update(spec.name for spec in step.makes())
    return list(available.values()), returned, [name for name in read_after if name not in made_after]


def _check_reads(step: Step, available: dict[str, TensorSpec], where: str) -> None:
    missing = [name for name in step.reads() if name not in available]
    if missing:
        raise ValueError(f"steps.{where}: a '{step.kind}' step reads {missing}, which no input or earlier step makes")
