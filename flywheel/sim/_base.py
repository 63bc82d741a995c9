"""Shared pieces of the scenario models: the strict base class and constrained numbers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Probability = Annotated[float, Field(ge=0, le=1)]
Weight = Annotated[float, Field(ge=0)]


class StrictModel(BaseModel):
    """Frozen, and unknown fields are errors (a typo in a file fails instead of being ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
