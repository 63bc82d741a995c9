"""The simulated world's truth at any run (tick): model quality, availability, responses.

`Environment(scenario)` precomputes, per model, workflow and category, the
quality as a piecewise-linear function of the tick (the scenario's events
applied in order) and, per model, the ticks at which it goes up or down. A
response is then a few table look-ups and draws from a `random.Random` seeded by
a stable hash of (seed, model, workflow, tick, prompt): the same call always
returns the same response, in any process.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from .events import DegradeEvent, GradualDegradeEvent, RecoverEvent
from .prompts import report_text
from .scenario import ModelProfile, Scenario, WorkflowTraffic
from .seeding import stable_seed
from .vocabulary import truth_label

ANY_CATEGORY = "*"  # the schedule used for a category the scenario does not list
_WORDS_PER_TOKEN = 1 / 1.35


class ModelUnavailable(RuntimeError):
    """The model is down (outage) or not yet added at this tick."""

    def __init__(self, model: str, tick: int):
        self.model = model
        self.tick = tick
        super().__init__(f"model {model!r} is unavailable at run {tick}")


@dataclass(slots=True, frozen=True)
class SimResponse:
    """What a simulated agent returns, plus the hidden truth (`correct`, `score`)."""

    model: str
    answer: dict[str, Any]
    confidence: float
    tokens_in: int
    tokens_out: int
    cost: float
    latency_s: float
    correct: bool  # hidden: for the outcome reporter only, never for the router
    score: float  # hidden: quality of the answer in [0, 1] (1/0 for classification)

    def visible(self) -> dict[str, Any]:
        """What an agent would report (the hidden truth left out)."""
        return {
            "answer": self.answer,
            "confidence": self.confidence,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost": self.cost,
            "latency_s": self.latency_s,
        }


class QualitySchedule:
    """Quality as a function of the tick: segments that ramp linearly, then hold.

    Segment (start, q0, end, q1): from `start`, quality moves linearly from q0 to
    q1, reached at `end` (end == start: an abrupt change), and holds until the next
    segment starts.

    >>> s = QualitySchedule(0.9)
    >>> s.add(100, 0.9, 200, 0.5)
    >>> [round(s.at(t), 3) for t in (0, 100, 150, 200, 10**6)]
    [0.9, 0.9, 0.7, 0.5, 0.5]
    """

    __slots__ = ("_starts", "_segments")

    def __init__(self, base: float):
        self._starts: list[int] = [0]
        self._segments: list[tuple[int, float, int, float]] = [(0, base, 0, base)]

    def add(self, start: int, q0: float, end: int, q1: float) -> None:
        """Append a segment starting at `start` (not before the last one's start)."""
        if start == self._starts[-1]:
            self._segments[-1] = (start, q0, end, q1)
        else:
            self._starts.append(start)
            self._segments.append((start, q0, end, q1))

    def at(self, tick: int) -> float:
        """The quality at `tick`."""
        if len(self._starts) == 1:
            start, q0, end, q1 = self._segments[0]
        else:
            start, q0, end, q1 = self._segments[bisect_right(self._starts, tick) - 1]
        if tick >= end:
            return q1
        return q0 + (q1 - q0) * (tick - start) / (end - start)


@dataclass(slots=True, frozen=True)
class _Arm:
    """A model's constants, precomputed for the request path."""

    name: str
    mu: float
    sigma: float
    per_1k_output_s: float
    price_in: float
    price_out: float
    half_sharpness: float
    bias: float
    verbosity: float
    starts: tuple[int, ...]  # ticks where availability changes (0 first)
    up: tuple[bool, ...]


class Environment:
    """The simulated world of a scenario: quality, availability and responses by tick.

    >>> from flywheel.sim import load_scenario
    >>> env = Environment(load_scenario("outage"))
    >>> env.available("balanced", 2999), env.available("balanced", 3000)
    (True, False)
    >>> req = {"text": "My parcel is late and still missing.", "product": "shipping",
    ...        "customer_tier": "pro", "channel": "email"}
    >>> env.truth("ticket_triage", req)
    'delivery'
    >>> env.respond("fast", "ticket_triage", req, tick=7) == env.respond("fast", "ticket_triage", req, tick=7)
    True
    """

    def __init__(self, scenario: Scenario, seed: int | None = None):
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self._traffic: dict[str, WorkflowTraffic] = dict(scenario.workflows)
        self._labels: dict[str, list[str] | None] = {
            wf: t.labels for wf, t in scenario.workflows.items()
        }
        self._wrong: dict[tuple[str, str], tuple[str, ...]] = {
            (wf, lab): tuple(x for x in labels if x != lab) or (lab,)
            for wf, labels in self._labels.items()
            if labels
            for lab in labels
        }
        self._length_field: dict[str, str | None] = {
            wf: next((n for n in t.numbers if "length" in n), None) for wf, t in self._traffic.items()
        }
        self._arms: dict[str, _Arm] = {m.name: self._arm(m) for m in scenario.models}
        self._quality: dict[tuple[str, str, str], QualitySchedule] = {}
        for m in scenario.models:
            self._build_quality(m)

    # -- the world's truth ---------------------------------------------------

    def quality(self, model: str, workflow: str, category: str, tick: int) -> float:
        """Probability that `model` answers a `category` input of `workflow` correctly at `tick`."""
        sched = self._quality.get((model, workflow, category))
        if sched is None:
            sched = self._quality[(model, workflow, ANY_CATEGORY)]
        return sched.at(tick)

    def available(self, model: str, tick: int) -> bool:
        """Whether `model` can be called at `tick` (added and not in an outage)."""
        arm = self._arms[model]
        return arm.up[bisect_right(arm.starts, tick) - 1]

    def category_of(self, workflow: str, input: dict[str, Any]) -> str:
        """The category of an input: the value of the workflow's category field."""
        return str(input[self._traffic[workflow].category_field])

    def truth(self, workflow: str, input: dict[str, Any]) -> str | None:
        """The true label of an input (from the input alone); None for graded workflows."""
        labels = self._labels[workflow]
        if not labels:
            return None
        return truth_label(str(input.get(self._traffic[workflow].prompt_field, "")), labels)

    @property
    def models(self) -> list[str]:
        """All model names of the scenario."""
        return list(self._arms)

    # -- a call to an agent --------------------------------------------------

    def respond(self, model: str, workflow: str, input: dict[str, Any], tick: int) -> SimResponse:
        """What `model` returns for `input` at `tick`; raises ModelUnavailable when it is down."""
        try:
            arm = self._arms[model]
        except KeyError:
            raise KeyError(f"unknown model {model!r} (scenario {self.scenario.name!r})") from None
        if not arm.up[bisect_right(arm.starts, tick) - 1]:
            raise ModelUnavailable(model, tick)
        traffic = self._traffic[workflow]
        prompt = str(input.get(traffic.prompt_field, ""))
        category = str(input.get(traffic.category_field, ANY_CATEGORY))
        q = self.quality(model, workflow, category, tick)
        rng = random.Random(stable_seed(self.seed, model, workflow, tick, prompt))
        correct = rng.random() < q
        labels = self._labels[workflow]
        words = 0
        if labels:
            true = truth_label(prompt, labels)
            label = true if correct else rng.choice(self._wrong[(workflow, true)])
            answer: dict[str, Any] = {"label": label}
            tokens_out = max(1, int(rng.randint(6, 40) * arm.verbosity))
            score = 1.0 if correct else 0.0
        else:
            length_field = self._length_field[workflow]
            target = input.get(length_field) if length_field else None
            target_words = float(target) if isinstance(target, (int, float)) else 300.0
            words = max(1, int(target_words * rng.uniform(0.8, 1.25)))
            tokens_out = max(1, int(words / _WORDS_PER_TOKEN * arm.verbosity))
            audience = str(input.get("audience", "internal"))
            answer = {"report": report_text(rng, category, audience, correct), "words": words}
            score = rng.uniform(0.65, 1.0) if correct else rng.uniform(0.05, 0.55)
        logit = arm.bias + (arm.half_sharpness if correct else -arm.half_sharpness) + rng.gauss(0.0, 1.0)
        confidence = 1.0 / (1.0 + math.exp(-logit))
        tokens_in = max(1, len(prompt) // 4)
        latency = rng.lognormvariate(arm.mu, arm.sigma) + tokens_out * arm.per_1k_output_s / 1000
        cost = (tokens_in * arm.price_in + tokens_out * arm.price_out) / 1000
        return SimResponse(
            model=model,
            answer=answer,
            confidence=confidence,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=cost,
            latency_s=latency,
            correct=correct,
            score=score,
        )

    def graded_score(self, correct: bool, *key: object) -> float:
        """A graded quality in [0, 1] for a report, deterministic in `key` (higher when correct)."""
        rng = random.Random(stable_seed(self.seed, "score", *key))
        return rng.uniform(0.65, 1.0) if correct else rng.uniform(0.05, 0.55)

    # -- precomputation ------------------------------------------------------

    def _arm(self, m: ModelProfile) -> _Arm:
        starts, up = [0], [m.available]
        for e in sorted((e for e in self.scenario.events if e.model == m.name), key=lambda e: e.at_run):
            if e.kind in ("add", "restore", "outage"):
                state = e.kind != "outage"
                if e.at_run == starts[-1]:
                    up[-1] = state
                else:
                    starts.append(e.at_run)
                    up.append(state)
        sigma = m.latency.sigma
        return _Arm(
            name=m.name,
            mu=math.log(m.latency.mean_s) - sigma * sigma / 2,
            sigma=sigma,
            per_1k_output_s=m.latency.per_1k_output_s,
            price_in=m.price.input_per_1k,
            price_out=m.price.output_per_1k,
            half_sharpness=m.confidence_sharpness / 2,
            bias=m.confidence_bias,
            verbosity=m.verbosity,
            starts=tuple(starts),
            up=tuple(up),
        )

    def _build_quality(self, m: ModelProfile) -> None:
        events = sorted(
            (e for e in self.scenario.events if e.model == m.name and e.kind not in ("add", "outage", "restore")),
            key=lambda e: e.at_run,
        )
        for wf, traffic in self._traffic.items():
            table = m.quality.get(wf, {})
            default = m.default_quality.get(wf)
            if default is None:
                default = sum(table.values()) / len(table) if table else 0.0
            for cat in [*traffic.categories, ANY_CATEGORY]:
                base = table.get(cat, default)
                sched = QualitySchedule(base)
                for e in events:
                    now = sched.at(e.at_run)
                    if isinstance(e, RecoverEvent):
                        if e.covers(wf, cat):
                            sched.add(e.at_run, base, e.at_run, base)
                        continue
                    assert isinstance(e, (DegradeEvent, GradualDegradeEvent))
                    target = e.target(wf, cat, now)
                    if target is None:
                        continue
                    if isinstance(e, GradualDegradeEvent):
                        sched.add(e.at_run, now, e.until_run, target)
                    else:
                        sched.add(e.at_run, target, e.at_run, target)
                self._quality[(m.name, wf, cat)] = sched
