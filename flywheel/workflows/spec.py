"""Workflow specs: the typed form of configs/workflows/*.yaml.

A workflow is a small graph of steps (route, agent, gate, human, finish), the
objective that turns an outcome into a reward, the features the router sees,
and the targets the learners aim at. Everything here is validated once, when
the file is loaded; a bad file fails naming the file, the field and the reason.
"""

from __future__ import annotations

from typing import Annotated, Callable, Iterator, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flywheel.workflows.run_limits import RunLimitsOverride
from flywheel.workflows.prompts import PromptTemplate


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputField(_Model):
    """One declared field of a run's input."""

    name: str = Field(description="Key of the field in the run's input object.", min_length=1)
    type: Literal["category", "number", "text", "boolean"] = Field(
        description="category: one of `values`; number: int or float; text: free text; boolean."
    )
    values: list[str] | None = Field(
        default=None, description="Allowed values of a category field (required for category)."
    )
    required: bool = Field(default=True, description="Whether a run's input must carry the field.")
    description: str = Field(default="", description="What the field means, for the OpenAPI docs.")
    min: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="number: smallest allowed value (None: no lower bound; NaN and infinities are always refused).",
    )
    max: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="number: largest allowed value (None: no upper bound; NaN and infinities are always refused).",
    )

    @model_validator(mode="after")
    def _values_for_categories(self) -> "InputField":
        if self.type == "category" and not self.values:
            raise ValueError(f"field {self.name!r}: a category field needs a non-empty `values` list")
        if self.type != "category" and self.values is not None:
            raise ValueError(f"field {self.name!r}: `values` applies to category fields only")
        if self.type != "number" and (self.min is not None or self.max is not None):
            raise ValueError(f"field {self.name!r}: `min` and `max` apply to number fields only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"field {self.name!r}: min ({self.min}) is above max ({self.max})")
        return self


class Features(_Model):
    """What the router sees of a run's input."""

    fields: list[str] = Field(
        default_factory=list, description="Declared input fields the router sees (by name)."
    )
    prompt: bool = Field(
        default=True, description="Whether the router sees the prompt text (the spec's prompt_field)."
    )


class Objective(_Model):
    """The reward of an outcome: quality minus weighted cost and latency."""

    quality_weight: float = Field(default=1.0, ge=0, description="Weight of the quality score (0..1).")
    cost_weight: float = Field(default=0.0, ge=0, description="Reward lost per unit of cost (USD).")
    latency_weight: float = Field(default=0.0, ge=0, description="Reward lost per second of latency.")
    override_penalty: float = Field(
        default=0.0, ge=0, description="Reward lost when a human overrode the answer."
    )


class Bounds(_Model):
    """A closed interval a learned value must stay inside."""

    low: float = Field(description="Smallest allowed value.")
    high: float = Field(description="Largest allowed value.")

    @model_validator(mode="after")
    def _ordered(self) -> "Bounds":
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        return self


class Targets(_Model):
    """What the learners aim at."""

    max_unattended_error_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Highest error rate allowed among runs completed without a human.",
    )
    threshold_bounds: Bounds = Field(
        default_factory=lambda: Bounds(low=0.0, high=1.0),
        description="Bounds any learned confidence threshold must stay inside.",
    )
    p95_latency_s: float | None = Field(
        default=None,
        gt=0,
        description="The p95 response time (s) each agent call of the workflow must meet; resource plans "
        "(`flywheel tune WF --resources`) size the agent deployments for it (none: no plan).",
    )


class Routing(_Model):
    """The initial routing policy: a weight per arm, softmax over them."""

    weights: dict[str, float] = Field(description="Initial score of each arm (by agent name).")
    temperature: float = Field(default=1.0, gt=0, description="Softmax temperature over the weights.")


class RouteStep(_Model):
    id: str = Field(description="Unique id of the step within the workflow.")
    kind: Literal["route"] = Field(description="Choose one arm among `arms` with the routing policy.")
    arms: list[str] = Field(min_length=1, description="Agent names this step may route to.")
    next: str | None = Field(default=None, description="Next step id (default: the following step).")


class AgentStep(_Model):
    id: str = Field(description="Unique id of the step within the workflow.")
    kind: Literal["agent"] = Field(description="Call the agent chosen by the preceding route step.")
    next: str | None = Field(default=None, description="Next step id (default: the following step).")
    prompt: PromptTemplate | None = Field(
        default=None,
        description="What a real model is asked and the answer's schema (sim and replay agents ignore it).",
    )


class GateStep(_Model):
    id: str = Field(description="Unique id of the step within the workflow.")
    kind: Literal["gate"] = Field(description="Compare the agent's confidence with a threshold.")
    threshold: float = Field(ge=0, le=1, description="Initial confidence threshold (learned later).")
    on_pass: str = Field(description="Step id when confidence >= threshold.")
    on_fail: str = Field(description="Step id when confidence < threshold.")


class HumanStep(_Model):
    id: str = Field(description="Unique id of the step within the workflow.")
    kind: Literal["human"] = Field(description="Wait for a human decision: approve, reject or edit.")
    next: str | None = Field(default=None, description="Next step id (default: the following step).")


class FinishStep(_Model):
    id: str = Field(description="Unique id of the step within the workflow.")
    kind: Literal["finish"] = Field(description="End the run and return its answer.")


Step = Annotated[
    Union[RouteStep, AgentStep, GateStep, HumanStep, FinishStep], Field(discriminator="kind")
]


class WorkflowSpec(_Model):
    """One workflow, as written in configs/workflows/<name>.yaml."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Workflow name, used in URLs.")
    description: str = Field(default="", description="What the workflow does.")
    prompt_field: str = Field(description="Input field holding the prompt text sent to the agent.")
    inputs: list[InputField] = Field(min_length=1, description="Declared fields of a run's input.")
    features: Features = Field(default_factory=Features, description="What the router sees.")
    objective: Objective = Field(default_factory=Objective, description="Reward of an outcome.")
    targets: Targets = Field(default_factory=Targets, description="What the learners aim at.")
    routing: Routing = Field(description="Initial routing policy.")
    steps: list[Step] = Field(min_length=2, description="The steps, executed from the first.")
    limits: RunLimitsOverride = Field(
        default_factory=RunLimitsOverride,
        description="This workflow's own run size limits (each unset one: the service's limits.runs).",
    )

    @model_validator(mode="after")
    def _check_graph(self) -> "WorkflowSpec":
        names = [f.name for f in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError("inputs: field names must be unique")
        if self.prompt_field not in names:
            raise ValueError(f"prompt_field: {self.prompt_field!r} is not a declared input")
        for f in self.features.fields:
            if f not in names:
                raise ValueError(f"features.fields: {f!r} is not a declared input")
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError("steps: step ids must be unique")
        for s in self.steps:
            for ref in _references(s):
                if ref not in ids:
                    raise ValueError(f"steps: step {s.id!r} goes to unknown step {ref!r}")
        for s in self.steps:
            if isinstance(s, AgentStep) and s.prompt is not None:
                unknown = [p for p in s.prompt.placeholders() if p not in names]
                if unknown:
                    raise ValueError(f"steps: agent step {s.id!r}: prompt.user inserts undeclared inputs {unknown}")
        routes = [s for s in self.steps if isinstance(s, RouteStep)]
        if len(routes) != 1:
            raise ValueError("steps: a workflow has exactly one route step")
        if not any(isinstance(s, AgentStep) for s in self.steps):
            raise ValueError("steps: a workflow needs an agent step")
        if not any(isinstance(s, FinishStep) for s in self.steps):
            raise ValueError("steps: a workflow needs a finish step")
        if not isinstance(self.steps[-1], (FinishStep, GateStep)) and self.steps[-1].next is None:
            raise ValueError("steps: the last step must be a finish step or name its next step")
        arms = routes[0].arms
        missing = [a for a in arms if a not in self.routing.weights]
        extra = [a for a in self.routing.weights if a not in arms]
        if missing or extra:
            raise ValueError(
                f"routing.weights: must give one weight per arm of the route step "
                f"(missing {missing}, unknown {extra})"
            )
        self._check_runnable()
        return self

    def successors(self, step_id: str) -> list[str]:
        """The step ids the engine may go to after `step_id` (none after a finish step)."""
        step = self.step(step_id)
        if isinstance(step, GateStep):
            return list(dict.fromkeys([step.on_pass, step.on_fail]))
        if isinstance(step, FinishStep):
            return []
        after = step.next or self.next_of(step.id)
        return [after] if after else []

    def _reachable(self, start: str, *, through: "Callable[[Step], bool]" = lambda s: True) -> list[str]:
        """Step ids reachable from `start` (itself included), expanding only steps `through` accepts."""
        seen, todo = [start], [start]
        while todo:
            step = self.step(todo.pop())
            if not through(step):
                continue
            for nxt in self.successors(step.id):
                if nxt not in seen:
                    seen.append(nxt)
                    todo.append(nxt)
        return seen

    def _check_runnable(self) -> None:
        """Refuse graphs the engine cannot run, naming the step (see flywheel.workflows.engine)."""
        start = self.steps[0].id
        reachable = self._reachable(start)
        loop = _cycle(reachable, self.successors)
        if loop:
            raise ValueError(
                f"steps: step {loop[0]!r} can be reached again from itself "
                f"({' -> '.join(loop)}): the step graph loops"
            )
        for sid in self._reachable(start, through=lambda s: not isinstance(s, RouteStep)):
            if isinstance(self.step(sid), AgentStep):
                raise ValueError(
                    f"steps: agent step {sid!r} can be reached without passing the route step "
                    "(no arm is chosen for it)"
                )
        for human in [sid for sid in reachable if isinstance(self.step(sid), HumanStep)]:
            for sid in self._reachable(human)[1:]:
                step = self.step(sid)
                if isinstance(step, (RouteStep, AgentStep, GateStep)):
                    raise ValueError(
                        f"steps: {step.kind} step {sid!r} follows human step {human!r}: a run resumed "
                        "after a human has no live config or chosen arm; only human and finish steps "
                        "may follow a human step"
                    )

    @property
    def arms(self) -> list[str]:
        """The agent names the route step chooses among."""
        return next(s for s in self.steps if isinstance(s, RouteStep)).arms

    @property
    def prompts(self) -> dict[str, PromptTemplate]:
        """The prompt template of each agent step that has one, by step id."""
        return {s.id: s.prompt for s in self.steps if isinstance(s, AgentStep) and s.prompt is not None}

    @property
    def gates(self) -> dict[str, float]:
        """Initial threshold of each gate step, by step id."""
        return {s.id: s.threshold for s in self.steps if isinstance(s, GateStep)}

    def step(self, step_id: str) -> Step:
        """The step with this id."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def next_of(self, step_id: str) -> str | None:
        """The id of the step after `step_id` when it names none (None after the last)."""
        ids = [s.id for s in self.steps]
        i = ids.index(step_id)
        return ids[i + 1] if i + 1 < len(ids) else None


def _cycle(ids: list[str], successors: Callable[[str], list[str]]) -> list[str]:
    """A loop among `ids` as the path [a, b, ..., a], or [] when the graph has none."""
    done: set[str] = set()
    for root in ids:
        if root in done:
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(successors(root)))]
        path.append(root)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                done.add(node)
            elif child in path:
                return path[path.index(child):] + [child]
            elif child not in done:
                stack.append((child, iter(successors(child))))
                path.append(child)
    return []


def _references(step: Step) -> list[str]:
    if isinstance(step, GateStep):
        return [step.on_pass, step.on_fail]
    if isinstance(step, FinishStep):
        return []
    return [step.next] if step.next else []
