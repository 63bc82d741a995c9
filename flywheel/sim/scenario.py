"""Scenarios: the typed form of configs/scenarios/*.yaml.

A scenario describes a simulated world: the agents (their quality per workflow
and category, latency, prices, how informative their confidence is), the traffic
(which workflows and categories arrive, and how that mix changes over runs),
the events that change the world mid-stream (a model degrades, recovers, is
added, goes down), and how outcomes come back (late, never, twice) and how the
human reviewer behaves. Everything is validated once, when the file is loaded;
a bad file fails naming the file, the field and the reason (`ConfigError`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from flywheel.workflows.loading import load_model, packaged_configs
from flywheel.workflows.spec import WorkflowSpec

from ._base import Probability, StrictModel, Weight
from .events import Event

Mix = dict[str, Weight]


def _check_mix(mix: dict[str, float], what: str) -> None:
    if not mix:
        raise ValueError(f"{what}: needs at least one entry")
    if sum(mix.values()) <= 0:
        raise ValueError(f"{what}: weights must not all be zero")


class Latency(StrictModel):
    """A lognormal latency: its mean and the sigma of its logarithm."""

    mean_s: float = Field(gt=0, description="Mean latency of one call in seconds.")
    sigma: float = Field(default=0.4, ge=0, le=3, description="Sigma of log(latency); 0: constant.")
    per_1k_output_s: float = Field(
        default=0.0, ge=0, description="Seconds added per 1000 output tokens (long answers take longer)."
    )


class Price(StrictModel):
    """What one call costs, in USD per 1000 tokens."""

    input_per_1k: float = Field(ge=0, description="USD per 1000 input (prompt) tokens.")
    output_per_1k: float = Field(ge=0, description="USD per 1000 output tokens.")


class ModelProfile(StrictModel):
    """One simulated agent: how good, how fast, how expensive, how self-aware."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="Agent name (an arm of the workflows).")
    quality: dict[str, dict[str, Probability]] = Field(
        default_factory=dict,
        description="Per workflow, per category: probability that the answer is correct.",
    )
    default_quality: dict[str, Probability] = Field(
        default_factory=dict,
        description="Per workflow: quality of any category not listed in `quality` "
        "(a category with neither is a validation error).",
    )
    latency: Latency = Field(description="Latency of a call.")
    price: Price = Field(description="Price of a call.")
    confidence_sharpness: float = Field(
        ge=0,
        le=10,
        description="How far apart the confidence of correct and wrong answers is, in logits "
        "(0: confidence says nothing about correctness; 3: it says a lot).",
    )
    confidence_bias: float = Field(
        default=0.5,
        ge=-5,
        le=5,
        description="Logit offset of every confidence (positive: the model tends to be overconfident).",
    )
    verbosity: float = Field(default=1.0, gt=0, le=5, description="Multiplier of output tokens.")
    available: bool = Field(
        default=True,
        description="Whether the model can be called from run 0 (an `add` event makes it available later).",
    )


class NumberRange(StrictModel):
    """A numeric input drawn uniformly from [low, high]."""

    low: float = Field(description="Smallest value.")
    high: float = Field(description="Largest value.")
    integer: bool = Field(default=True, description="Whether values are whole numbers.")

    @model_validator(mode="after")
    def _ordered(self) -> "NumberRange":
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        return self


class WorkflowTraffic(StrictModel):
    """The inputs one workflow receives."""

    prompt_field: str = Field(description="Input field holding the generated prompt text.")
    category_field: str = Field(description="Category input field that the models' quality depends on.")
    categories: Mix = Field(description="Mix of the category field's values (weights).")
    fields: dict[str, Mix] = Field(
        default_factory=dict, description="Mix of the values of each other category input field."
    )
    numbers: dict[str, NumberRange] = Field(
        default_factory=dict, description="Range of each numeric input field."
    )
    labels: list[str] | None = Field(
        default=None,
        description="Possible true answers of a classification workflow; absent: answers are graded "
        "reports whose quality is a score in [0, 1].",
    )
    label_mix: dict[str, Mix] = Field(
        default_factory=dict,
        description="Per category: mix of the true labels (a category not listed: uniform over labels).",
    )

    @model_validator(mode="after")
    def _check(self) -> "WorkflowTraffic":
        _check_mix(self.categories, "categories")
        names = [self.prompt_field, self.category_field, *self.fields, *self.numbers]
        if len(set(names)) != len(names):
            raise ValueError(f"input field names must be unique across prompt/category/fields/numbers: {names}")
        for field, mix in self.fields.items():
            _check_mix(mix, f"fields.{field}")
        if self.labels is not None and (not self.labels or len(set(self.labels)) != len(self.labels)):
            raise ValueError("labels: must be a non-empty list of unique labels")
        if self.label_mix and self.labels is None:
            raise ValueError("label_mix: applies only when `labels` is given")
        for cat, mix in self.label_mix.items():
            if cat not in self.categories:
                raise ValueError(f"label_mix: {cat!r} is not a category of {self.category_field!r}")
            _check_mix(mix, f"label_mix.{cat}")
            unknown = [lab for lab in mix if lab not in (self.labels or [])]
            if unknown:
                raise ValueError(f"label_mix.{cat}: unknown labels {unknown}")
        return self


class TrafficPhase(StrictModel):
    """The traffic mix from one run on (until the next phase)."""

    from_run: int = Field(ge=0, description="First run (tick) of the phase.")
    workflows: Mix = Field(description="Mix of workflows (weights).")
    categories: dict[str, Mix] = Field(
        default_factory=dict,
        description="Per workflow: category mix that replaces the workflow's own during this phase.",
    )

    @model_validator(mode="after")
    def _check(self) -> "TrafficPhase":
        _check_mix(self.workflows, "workflows")
        for wf, mix in self.categories.items():
            _check_mix(mix, f"categories.{wf}")
        return self


class Reviewer(StrictModel):
    """How the human reviewer behaves on runs that reach a human step."""

    catch_probability: Probability = Field(
        default=0.9, description="Probability that the reviewer rejects or fixes a wrong answer."
    )
    false_alarm_probability: Probability = Field(
        default=0.02, description="Probability that the reviewer rejects a correct answer."
    )
    edit_share: Probability = Field(
        default=0.7, description="Share of caught wrong answers the reviewer edits (the rest: reject)."
    )


class OutcomeReporting(StrictModel):
    """How outcomes of runs come back: on time, late, never, or twice."""

    late_share: Probability = Field(default=0.0, description="Share of runs whose outcome comes late.")
    delay_min_runs: int = Field(default=1, ge=1, description="Smallest delay of a late outcome, in runs.")
    delay_max_runs: int = Field(default=1000, ge=1, description="Largest delay of a late outcome, in runs.")
    never_share: Probability = Field(default=0.0, description="Share of runs whose outcome never comes.")
    twice_share: Probability = Field(
        default=0.0, description="Share of reported outcomes delivered twice (same event_id)."
    )
    duplicate_delay_max_runs: int = Field(
        default=100, ge=0, description="Largest delay of the second delivery after the first, in runs."
    )
    reviewer: Reviewer = Field(default_factory=Reviewer, description="The human reviewer's behaviour.")

    @model_validator(mode="after")
    def _check(self) -> "OutcomeReporting":
        if self.delay_min_runs > self.delay_max_runs:
            raise ValueError(
                f"delay_min_runs ({self.delay_min_runs}) is above delay_max_runs ({self.delay_max_runs})"
            )
        if self.late_share + self.never_share > 1:
            raise ValueError(
                f"late_share + never_share must be at most 1 (got {self.late_share + self.never_share})"
            )
        return self


class Scenario(StrictModel):
    """A simulated world, as written in configs/scenarios/<name>.yaml."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Scenario name.")
    description: str = Field(default="", description="What the scenario stresses.")
    seed: int = Field(ge=0, description="Default seed of traffic, responses and outcomes.")
    runs: int = Field(default=20000, gt=0, description="Default length of the scenario, in runs.")
    models: list[ModelProfile] = Field(min_length=1, description="The simulated agents.")
    workflows: dict[str, WorkflowTraffic] = Field(
        min_length=1, description="Traffic of each workflow, by workflow name."
    )
    phases: list[TrafficPhase] = Field(
        min_length=1, description="The traffic mix over time, sorted by from_run; the first starts at 0."
    )
    events: list[Event] = Field(default_factory=list, description="Changes of the world at given runs.")
    reporting: OutcomeReporting = Field(
        default_factory=OutcomeReporting, description="How outcomes come back."
    )

    def model(self, name: str) -> ModelProfile:
        """The profile of the model called `name`."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def model_names(self) -> list[str]:
        """Names of all models, in file order."""
        return [m.name for m in self.models]

    @model_validator(mode="after")
    def _check(self) -> "Scenario":
        names = self.model_names
        if len(set(names)) != len(names):
            raise ValueError(f"models: names must be unique ({names})")
        for m in self.models:
            self._check_quality(m)
        self._check_phases()
        self._check_events()
        return self

    def _check_quality(self, m: ModelProfile) -> None:
        for wf in [*m.quality, *m.default_quality]:
            if wf not in self.workflows:
                raise ValueError(f"models: {m.name!r} gives quality for unknown workflow {wf!r}")
        for wf, traffic in self.workflows.items():
            table = m.quality.get(wf, {})
            unknown = [c for c in table if c not in traffic.categories]
            if unknown:
                raise ValueError(f"models: {m.name!r} quality.{wf}: unknown categories {unknown}")
            missing = [c for c in traffic.categories if c not in table]
            if missing and wf not in m.default_quality:
                raise ValueError(
                    f"models: {m.name!r} quality.{wf}: no quality for categories {missing} "
                    f"and no default_quality.{wf}"
                )

    def _check_phases(self) -> None:
        starts = [p.from_run for p in self.phases]
        if starts[0] != 0:
            raise ValueError("phases: the first phase must start at from_run 0")
        if any(b <= a for a, b in zip(starts, starts[1:])):
            raise ValueError(f"phases: from_run must be strictly increasing ({starts})")
        for i, p in enumerate(self.phases):
            for wf in [*p.workflows, *p.categories]:
                if wf not in self.workflows:
                    raise ValueError(f"phases.{i}: unknown workflow {wf!r}")
            for wf, mix in p.categories.items():
                unknown = [c for c in mix if c not in self.workflows[wf].categories]
                if unknown:
                    raise ValueError(f"phases.{i}.categories.{wf}: unknown categories {unknown}")

    def _check_events(self) -> None:
        up = {m.name: m.available for m in self.models}
        added = {m.name: m.available for m in self.models}
        order = sorted(range(len(self.events)), key=lambda i: self.events[i].at_run)
        for i in order:
            e = self.events[i]
            where = f"events.{i} ({e.kind} {e.model!r})"
            if e.model not in up:
                raise ValueError(f"{where}: unknown model {e.model!r}")
            for wf, cats in e.categories_named().items():
                if wf not in self.workflows:
                    raise ValueError(f"{where}: unknown workflow {wf!r}")
                unknown = [c for c in cats if c not in self.workflows[wf].categories]
                if unknown:
                    raise ValueError(f"{where}: unknown categories of {wf!r}: {unknown}")
            if e.kind == "add":
                if added[e.model]:
                    raise ValueError(f"{where}: the model is already available (set `available: false`)")
                added[e.model] = up[e.model] = True
            elif e.kind == "outage":
                if not up[e.model]:
                    raise ValueError(f"{where}: the model is not available at run {e.at_run}")
                up[e.model] = False
            elif e.kind == "restore":
                if up[e.model] or not added[e.model]:
                    raise ValueError(f"{where}: the model is not down at run {e.at_run}")
                up[e.model] = True


def load_scenario(name_or_path: str | Path, scenarios_dir: str | Path | None = None) -> Scenario:
    """Load a scenario by name (<scenarios_dir>/<name>.yaml) or by path.

    `scenarios_dir` defaults to the packaged scenarios (flywheel/configs/scenarios).
    Raises `flywheel.workflows.loading.ConfigError` naming the file, field and reason.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        return load_model(Path(name_or_path), Scenario)
    directory = Path(scenarios_dir) if scenarios_dir is not None else packaged_configs() / "scenarios"
    return load_model(directory / f"{text}.yaml", Scenario)


def spec_mismatches(scenario: Scenario, spec: WorkflowSpec) -> list[str]:
    """How the scenario's traffic for `spec.name` disagrees with the workflow's declared inputs.

    Empty when every generated field is declared with a compatible type and every
    generated category value is allowed.
    """
    traffic = scenario.workflows.get(spec.name)
    if traffic is None:
        return [f"scenario {scenario.name!r} has no traffic for workflow {spec.name!r}"]
    declared = {f.name: f for f in spec.inputs}
    problems: list[str] = []
    expected: list[tuple[str, str, list[str]]] = [
        (traffic.prompt_field, "text", []),
        (traffic.category_field, "category", list(traffic.categories)),
        *[(name, "category", list(mix)) for name, mix in traffic.fields.items()],
        *[(name, "number", []) for name in traffic.numbers],
    ]
    for name, kind, values in expected:
        f = declared.get(name)
        if f is None:
            problems.append(f"{spec.name}: generated field {name!r} is not declared")
        elif f.type != kind:
            problems.append(f"{spec.name}: field {name!r} is declared {f.type}, generated as {kind}")
        elif values and not set(values) <= set(f.values or []):
            problems.append(f"{spec.name}: field {name!r} values {sorted(set(values) - set(f.values or []))} not declared")
    generated = {name for name, _, _ in expected}
    for f in spec.inputs:
        if f.required and f.name not in generated:
            problems.append(f"{spec.name}: required field {f.name!r} is not generated")
    if spec.prompt_field != traffic.prompt_field:
        problems.append(f"{spec.name}: prompt_field is {spec.prompt_field!r}, scenario uses {traffic.prompt_field!r}")
    return problems


__all__ = [
    "Latency",
    "ModelProfile",
    "NumberRange",
    "OutcomeReporting",
    "Price",
    "Reviewer",
    "Scenario",
    "TrafficPhase",
    "WorkflowTraffic",
    "load_scenario",
    "spec_mismatches",
]
