"""Governance policy: which changes of a learned config may go live by themselves.

A config is judged as its learnable parameters, flattened to paths
(`parameters`). A policy file (configs/policies.yaml) gives each workflow rules
over those paths: bounds, the largest step per version and an autonomy
(`auto`, `review`, `frozen`). Judging a proposed version by these rules is
flywheel.registry.judge's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flywheel.registry.learned_config import LearnedConfig
from flywheel.workflows.loading import ConfigError, load_model

Autonomy = Literal["auto", "review", "frozen"]
OutOfBounds = Literal["clip", "refuse"]
OverStep = Literal["clip", "review", "refuse"]
Decision = Literal["auto", "review", "refused"]

EPS = 1e-12
"""Two values further apart than this differ."""
ROOTS = ("thresholds", "routing", "cost_weight", "resources")
"""First segment of every parameter path."""
BANDIT_DERIVED = ("routing.weights.*", "routing.exploration")
"""Paths that summarize a bandit's saved state: clipping them would not change what it does."""
_LEVEL = {"auto": 0, "review": 1, "refused": 2}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterRule(_Model):
    """What may happen to the parameters one pattern matches."""

    min: float | None = Field(default=None, allow_inf_nan=False, description="Lowest value allowed; none if unset.")
    max: float | None = Field(default=None, allow_inf_nan=False, description="Highest value allowed; none if unset.")
    max_step: float | None = Field(
        default=None, gt=0, allow_inf_nan=False,
        description="Largest absolute change from the champion in one version; no limit if unset.",
    )
    autonomy: Autonomy = Field(
        default="auto",
        description="auto: changes go live by themselves; review: a change waits for a person; "
        "frozen: a change is refused.",
    )
    out_of_bounds: OutOfBounds | None = Field(
        default=None, description="What a value outside [min, max] gets: clip or refuse; unset: the workflow's."
    )
    over_step: OverStep | None = Field(
        default=None, description="What a change above max_step gets: clip, review or refuse; unset: the workflow's."
    )

    @model_validator(mode="after")
    def _ordered(self) -> "ParameterRule":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class WorkflowPolicy(_Model):
    """The rules of one workflow: patterns over parameter paths, first match wins."""

    out_of_bounds: OutOfBounds = Field(default="clip", description="Default action for a value out of bounds.")
    over_step: OverStep = Field(default="review", description="Default action for a change above max_step.")
    parameters: dict[str, ParameterRule] = Field(
        default_factory=dict,
        description="Rules keyed by fnmatch pattern over parameter paths (`thresholds.*`, "
        "`routing.weights.frontier`); the first matching pattern in file order applies, "
        "so list exact paths before the globs that also match them.",
    )
    default: ParameterRule = Field(
        default_factory=ParameterRule, description="Rule of paths no pattern matches (auto, no bounds by default)."
    )

    @field_validator("parameters")
    @classmethod
    def _patterns_apply(cls, rules: dict[str, ParameterRule]) -> dict[str, ParameterRule]:
        patterns = list(rules)
        for i, pattern in enumerate(patterns):
            root = pattern.split(".", 1)[0]
            if not _is_glob(root) and root not in ROOTS:
                raise ValueError(f"pattern {pattern!r} matches no parameter: paths start with one of {ROOTS}")
            if _is_glob(pattern):
                continue
            for earlier in patterns[:i]:
                if fnmatchcase(pattern, earlier):
                    raise ValueError(
                        f"{pattern!r} never applies: the earlier pattern {earlier!r} matches it; "
                        "list exact paths before globs"
                    )
        return rules

    def rule_for(self, path: str) -> tuple[str | None, ParameterRule]:
        """(pattern, rule) that applies to `path`; pattern None for the default rule.

        >>> p = WorkflowPolicy(parameters={"thresholds.gate": {"max": 0.5}, "thresholds.*": {"max": 0.9}})
        >>> p.rule_for("thresholds.gate")[1].max, p.rule_for("thresholds.other")[1].max, p.rule_for("cost_weight")[0]
        (0.5, 0.9, None)
        """
        for pattern, rule in self.parameters.items():
            if fnmatchcase(path, pattern):
                return pattern, rule
        return None, self.default


class PolicyBook(_Model):
    """Every workflow's policy; a workflow without an entry gets `default`."""

    default: WorkflowPolicy = Field(
        default_factory=WorkflowPolicy,
        description="Policy of workflows without an entry; its patterns also follow each entry's own.",
    )
    workflows: dict[str, WorkflowPolicy] = Field(
        default_factory=dict, description="Policy of each workflow, keyed by the workflow's name."
    )

    def for_workflow(self, name: str) -> WorkflowPolicy:
        """The workflow's policy: its own patterns first, then the default's; its own settings where set.

        >>> book = PolicyBook(default={"parameters": {"cost_weight": {"autonomy": "frozen"}}},
        ...                   workflows={"w": {"parameters": {"thresholds.*": {"max": 0.9}}}})
        >>> list(book.for_workflow("w").parameters), book.for_workflow("other").over_step
        (['thresholds.*', 'cost_weight'], 'review')
        """
        own = self.workflows.get(name)
        if own is None:
            return self.default
        given = own.model_fields_set
        merged = dict(own.parameters)
        for pattern, rule in self.default.parameters.items():
            merged.setdefault(pattern, rule)
        return WorkflowPolicy.model_construct(
            out_of_bounds=own.out_of_bounds if "out_of_bounds" in given else self.default.out_of_bounds,
            over_step=own.over_step if "over_step" in given else self.default.over_step,
            parameters=merged,
            default=own.default if "default" in given else self.default.default,
        )


def load_policies(path: Path | str, workflows: Iterable[str] | None = None) -> PolicyBook:
    """Read a policy file; with `workflows`, also check it names no other workflow."""
    book = load_model(path, PolicyBook)
    if workflows is not None:
        check_workflows(book, workflows, source=path)
    return book


def check_workflows(book: PolicyBook, names: Iterable[str], source: Path | str = "<policies>") -> None:
    """Raise ConfigError naming each workflow of `book` that is not among `names`.

    >>> check_workflows(PolicyBook(workflows={"ticket_triag": {}}), ["ticket_triage"], "p.yaml")
    Traceback (most recent call last):
    ...
    flywheel.workflows.loading.ConfigError: invalid config
      p.yaml: workflows.ticket_triag: no workflow named 'ticket_triag' (known: ticket_triage)
    """
    known = sorted(set(names))
    unknown = [n for n in book.workflows if n not in known]
    if unknown:
        raise ConfigError(
            source,
            [(f"workflows.{n}", f"no workflow named {n!r} (known: {', '.join(known) or 'none'})") for n in unknown],
        )


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")
