"""Scenario events: what happens to a model at a given run.

An event is one of (discriminated on `kind`):

- `degrade`: from `at_run` on, the model's quality changes at once, either by a
  `multiplier` (over a `scope`, default everything) or to new absolute values
  given per workflow and category in `quality`.
- `gradual_degrade`: the same change, reached linearly between `at_run` and
  `until_run` (the quality at `at_run` slides to the target at `until_run`).
- `recover`: the quality goes back to the model's profile (over a `scope`).
- `add`: the model becomes available (its profile says `available: false`).
- `outage` / `restore`: the model becomes unavailable / available again.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from ._base import Probability, StrictModel


class _EventBase(StrictModel):
    at_run: int = Field(ge=0, description="Run (tick) at which the event takes effect.")
    model: str = Field(description="Name of the model the event happens to.")

    def categories_named(self) -> dict[str, list[str]]:
        """Categories the event names, per workflow (for validation against the scenario)."""
        return {}


class _QualityChange(_EventBase):
    multiplier: float | None = Field(
        default=None, ge=0, description="Multiply the quality by this (result clipped to [0, 1])."
    )
    scope: dict[str, list[str]] | None = Field(
        default=None,
        description="Per workflow, the categories the multiplier applies to (an empty list: all of "
        "the workflow's categories); absent: every workflow and category.",
    )
    quality: dict[str, dict[str, Probability]] | None = Field(
        default=None, description="New quality per workflow and category (others unchanged)."
    )

    @model_validator(mode="after")
    def _one_target(self) -> "_QualityChange":
        if (self.multiplier is None) == (self.quality is None):
            raise ValueError("give exactly one of `multiplier` and `quality`")
        if self.scope is not None and self.multiplier is None:
            raise ValueError("`scope` applies to `multiplier` only")
        return self

    def categories_named(self) -> dict[str, list[str]]:
        if self.quality is not None:
            return {wf: list(cats) for wf, cats in self.quality.items()}
        return dict(self.scope or {})

    def target(self, workflow: str, category: str, current: float) -> float | None:
        """The quality this event sets for (workflow, category), or None when it leaves it alone."""
        if self.quality is not None:
            return self.quality.get(workflow, {}).get(category)
        assert self.multiplier is not None
        if self.scope is not None:
            cats = self.scope.get(workflow)
            if cats is None or (cats and category not in cats):
                return None
        return min(1.0, max(0.0, current * self.multiplier))


class DegradeEvent(_QualityChange):
    """The model's quality changes at once at `at_run`."""

    kind: Literal["degrade"] = Field(description="Abrupt change of quality.")


class GradualDegradeEvent(_QualityChange):
    """The model's quality moves linearly from its value at `at_run` to the target at `until_run`."""

    kind: Literal["gradual_degrade"] = Field(description="Linear change of quality over runs.")
    until_run: int = Field(description="Run at which the target quality is reached (after at_run).")

    @model_validator(mode="after")
    def _ordered(self) -> "GradualDegradeEvent":
        if self.until_run <= self.at_run:
            raise ValueError(f"until_run ({self.until_run}) must be after at_run ({self.at_run})")
        return self


class RecoverEvent(_EventBase):
    """The model's quality returns to its profile."""

    kind: Literal["recover"] = Field(description="Quality back to the model's profile.")
    scope: dict[str, list[str]] | None = Field(
        default=None,
        description="Per workflow, the categories that recover (empty list: all); absent: everything.",
    )

    def categories_named(self) -> dict[str, list[str]]:
        return dict(self.scope or {})

    def covers(self, workflow: str, category: str) -> bool:
        """Whether (workflow, category) recovers."""
        if self.scope is None:
            return True
        cats = self.scope.get(workflow)
        return cats is not None and (not cats or category in cats)


class AddEvent(_EventBase):
    """The model becomes available (it was declared `available: false`)."""

    kind: Literal["add"] = Field(description="The model becomes available.")


class OutageEvent(_EventBase):
    """The model becomes unavailable: calls raise ModelUnavailable."""

    kind: Literal["outage"] = Field(description="The model goes down.")


class RestoreEvent(_EventBase):
    """The model is available again after an outage."""

    kind: Literal["restore"] = Field(description="The model comes back.")


Event = Annotated[
    Union[DegradeEvent, GradualDegradeEvent, RecoverEvent, AddEvent, OutageEvent, RestoreEvent],
    Field(discriminator="kind"),
]
QualityEvent = Union[DegradeEvent, GradualDegradeEvent, RecoverEvent]

__all__ = [
    "AddEvent",
    "DegradeEvent",
    "Event",
    "GradualDegradeEvent",
    "OutageEvent",
    "QualityEvent",
    "RecoverEvent",
    "RestoreEvent",
]
