"""Size limits of a run's input and metadata: what one run may carry.

The service sets defaults (``limits.runs`` in the app settings); a workflow spec may override
any of them (``limits:`` in its YAML). :func:`size_problems` names each field over a limit,
so the HTTP layer answers 422 at that field and nothing is stored.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RunLimits(BaseModel):
    """How much one run may carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_text_chars: int = Field(
        default=100_000, ge=1, description="Most characters of one text input field (the prompt among them)."
    )
    max_input_bytes: int = Field(
        default=256 * 1024, ge=1, description="Most bytes of the run's whole input, as compact JSON."
    )
    max_metadata_keys: int = Field(default=64, ge=0, description="Most keys in a run's metadata.")
    max_metadata_key_chars: int = Field(default=128, ge=1, description="Most characters of one metadata key.")
    max_metadata_value_chars: int = Field(
        default=1024, ge=0, description="Most characters of one metadata value."
    )


class RunLimitsOverride(BaseModel):
    """A workflow's own run limits; each field left out keeps the service's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_text_chars: int | None = Field(default=None, ge=1, description="See RunLimits.max_text_chars.")
    max_input_bytes: int | None = Field(default=None, ge=1, description="See RunLimits.max_input_bytes.")
    max_metadata_keys: int | None = Field(default=None, ge=0, description="See RunLimits.max_metadata_keys.")
    max_metadata_key_chars: int | None = Field(
        default=None, ge=1, description="See RunLimits.max_metadata_key_chars."
    )
    max_metadata_value_chars: int | None = Field(
        default=None, ge=0, description="See RunLimits.max_metadata_value_chars."
    )

    def over(self, base: RunLimits) -> RunLimits:
        """``base`` with this override's fields set."""
        return base.model_copy(update=self.model_dump(exclude_none=True))


Problem = tuple[tuple[str, ...], str]
"""(location in the request body, e.g. ("input", "text"), reason)."""


def size_problems(limits: RunLimits, data: dict[str, Any], metadata: dict[str, str]) -> list[Problem]:
    """Every field of a run's input or metadata over ``limits``; [] when all fit.

    >>> size_problems(RunLimits(max_text_chars=3), {"text": "long"}, {})
    [(('input', 'text'), 'longer than 3 characters (4)')]
    >>> size_problems(RunLimits(max_metadata_keys=1), {}, {"a": "1", "b": "2"})
    [(('metadata',), 'more than 1 keys (2)')]
    """
    problems: list[Problem] = []
    for name, value in data.items():
        if isinstance(value, str) and len(value) > limits.max_text_chars:
            problems.append((("input", name), f"longer than {limits.max_text_chars} characters ({len(value)})"))
    size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size > limits.max_input_bytes:
        problems.append((("input",), f"larger than {limits.max_input_bytes} bytes as JSON ({size})"))
    if len(metadata) > limits.max_metadata_keys:
        problems.append((("metadata",), f"more than {limits.max_metadata_keys} keys ({len(metadata)})"))
        return problems
    for key, value in metadata.items():
        if len(key) > limits.max_metadata_key_chars:
            problems.append((("metadata", key[:64]), f"key longer than {limits.max_metadata_key_chars} characters"))
        elif len(value) > limits.max_metadata_value_chars:
            problems.append(
                (("metadata", key), f"longer than {limits.max_metadata_value_chars} characters ({len(value)})")
            )
    return problems
