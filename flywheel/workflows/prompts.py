"""Prompt templates and output schemas of agent steps: what a real model is asked and must answer.

An agent step's `prompt` renders the run's input into chat messages and names the
answer's fields; from those a pydantic model is built, whose JSON schema goes to the
model as structured output (`response_format` / vLLM guided decoding). The `decisive`
field is the one whose tokens' log-probabilities give the answer's confidence.
Templates are versioned with the learned config (LearnedConfig.prompts).
"""

from __future__ import annotations

import hashlib
import json
import string
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputField(_Model):
    """One field of an agent's structured answer."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Key in the answer object.")
    type: Literal["category", "text", "number", "boolean"] = Field(description="category: one of `values`.")
    values: list[str] | None = Field(default=None, description="Allowed values of a category field.")
    max_length: int | None = Field(default=None, ge=1, description="Longest text value, in characters.")
    description: str = Field(default="", description="What the field holds (shown to the model in the schema).")

    @model_validator(mode="after")
    def _values_for_categories(self) -> "OutputField":
        if (self.type == "category") != bool(self.values):
            raise ValueError(f"field {self.name!r}: `values` is required for, and only for, category fields")
        return self


class Example(_Model):
    """A few-shot example: an input and the answer the model should give."""

    input: dict[str, Any] = Field(description="The example's input fields.")
    answer: dict[str, Any] = Field(description="The example's answer object.")


class PromptTemplate(_Model):
    """What an agent step asks a real model, and the shape of its answer."""

    system: str = Field(description="The system message.")
    user: str = Field(min_length=1, description="The user message; `{field}` inserts an input field.")
    output: list[OutputField] = Field(min_length=1, description="Fields of the answer object.")
    decisive: str = Field(description="Output field whose tokens' log-probabilities are the confidence.")
    examples: list[Example] = Field(default_factory=list, description="Few-shot examples, as earlier turns.")
    max_tokens: int = Field(default=96, ge=1, le=4096, description="Most tokens of an answer.")

    @model_validator(mode="after")
    def _consistent(self) -> "PromptTemplate":
        names = [f.name for f in self.output]
        if len(set(names)) != len(names):
            raise ValueError("output: field names must be unique")
        if self.decisive not in names:
            raise ValueError(f"decisive: {self.decisive!r} is not an output field")
        return self

    def placeholders(self) -> list[str]:
        """The input fields the user template inserts."""
        return [name for _, name, _, _ in string.Formatter().parse(self.user) if name]

    def answer_model(self) -> type[BaseModel]:
        """The pydantic model of an answer (extra fields forbidden)."""
        fields: dict[str, Any] = {}
        for f in self.output:
            kind: Any = {"text": str, "number": float, "boolean": bool}.get(f.type)
            if f.type == "category":
                kind = Literal[tuple(f.values or ())]  # type: ignore[valid-type]
            extra = {"max_length": f.max_length} if f.max_length and f.type == "text" else {}
            fields[f.name] = (kind, Field(description=f.description, **extra))
        return create_model("Answer", __config__=ConfigDict(extra="forbid"), **fields)

    @cached_property
    def schema(self) -> dict[str, Any]:
        """The answer's JSON schema, as sent for structured output (built once per template)."""
        return self.answer_model().model_json_schema()

    def messages(self, data: dict[str, Any]) -> list[dict[str, str]]:
        """The chat messages for one input (missing optional fields render empty)."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        for ex in self.examples:
            out.append({"role": "user", "content": self._render(ex.input)})
            out.append({"role": "assistant", "content": json.dumps(ex.answer)})
        out.append({"role": "user", "content": self._render(data)})
        return out

    def _render(self, data: dict[str, Any]) -> str:
        return self.user.format_map({name: data.get(name, "") for name in self.placeholders()})

    def version(self) -> str:
        """A short content hash: which template (and schema) an answer was given with."""
        body = json.dumps(self.model_dump(), sort_keys=True).encode()
        return hashlib.sha256(body).hexdigest()[:12]
