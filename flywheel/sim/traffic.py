"""Simulated traffic and feedback: requests, outcome reports, human reviews.

`TrafficGenerator` yields one `SimRequest` per tick. Each request is drawn from
a `random.Random` seeded by a stable hash of (seed, tick), so the stream is the
same in every process and any tick can be regenerated on its own (`at(tick)`).
The workflow and category mixes follow the scenario's traffic phases.

`OutcomeReporter` turns finished runs into the outcome events the world reports
back (on time, late, never, or twice with the same event_id), and
`HumanReviewer` plays the human at a workflow's human step.
"""

from __future__ import annotations

import heapq
import json
import random
from bisect import bisect_right
from dataclasses import dataclass, replace
from itertools import accumulate
from typing import Any, Iterator, Literal

from flywheel.ledger.records import OutcomeEvent

from .environment import Environment
from .prompts import report_request, report_text, ticket_text
from .scenario import Scenario, WorkflowTraffic
from .seeding import stable_seed
from .vocabulary import truth_label

Decision = Literal["approve", "reject", "edit"]

_Table = tuple[list[str], list[float]]  # values and their cumulative weights


def _table(mix: dict[str, float]) -> _Table:
    return list(mix), list(accumulate(mix.values()))


def _draw(rng: random.Random, table: _Table) -> str:
    values, cum = table
    return values[bisect_right(cum, rng.random() * cum[-1], hi=len(cum) - 1)]


@dataclass(slots=True, frozen=True)
class SimRequest:
    """One simulated run request."""

    tick: int  # run index in the scenario, 0, 1, 2 ...
    workflow: str
    input: dict[str, Any]  # the workflow's declared input fields
    key: str  # stable id of the request: scenario, seed and tick


class TrafficGenerator:
    """The stream of simulated requests of a scenario, one per tick.

    >>> from flywheel.sim import load_scenario
    >>> scenario = load_scenario("stationary")
    >>> a = [r.input for r in TrafficGenerator(scenario, seed=3, runs=50)]
    >>> b = [r.input for r in TrafficGenerator(scenario, seed=3, runs=50)]
    >>> a == b, a == [r.input for r in TrafficGenerator(scenario, seed=4, runs=50)]
    (True, False)
    >>> TrafficGenerator(scenario, seed=3).at(0).key
    'stationary-3-0'
    """

    def __init__(self, scenario: Scenario, seed: int | None = None, runs: int | None = None):
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.runs = scenario.runs if runs is None else runs
        self._starts = [p.from_run for p in scenario.phases]
        self._phases: list[tuple[_Table, dict[str, _Table]]] = [
            (
                _table(p.workflows),
                {
                    wf: _table(p.categories.get(wf, t.categories))
                    for wf, t in scenario.workflows.items()
                },
            )
            for p in scenario.phases
        ]
        self._fields: dict[str, dict[str, _Table]] = {
            wf: {name: _table(mix) for name, mix in t.fields.items()}
            for wf, t in scenario.workflows.items()
        }
        self._labels: dict[tuple[str, str], _Table] = {
            (wf, cat): _table(t.label_mix.get(cat) or dict.fromkeys(t.labels, 1.0))
            for wf, t in scenario.workflows.items()
            if t.labels
            for cat in t.categories
        }

    def __iter__(self) -> Iterator[SimRequest]:
        for tick in range(self.runs):
            yield self.at(tick)

    def __len__(self) -> int:
        return self.runs

    def at(self, tick: int) -> SimRequest:
        """The request of run `tick`."""
        rng = random.Random(stable_seed(self.seed, "traffic", tick))
        workflows, categories = self._phases[bisect_right(self._starts, tick) - 1]
        workflow = _draw(rng, workflows)
        traffic = self.scenario.workflows[workflow]
        category = _draw(rng, categories[workflow])
        fields: dict[str, Any] = {name: _draw(rng, table) for name, table in self._fields[workflow].items()}
        for name, rng_spec in traffic.numbers.items():
            if rng_spec.integer:
                fields[name] = rng.randint(int(rng_spec.low), int(rng_spec.high))
            else:
                fields[name] = rng.uniform(rng_spec.low, rng_spec.high)
        prompt = self._prompt(rng, workflow, traffic, category, fields)
        payload = {traffic.prompt_field: prompt, traffic.category_field: category, **fields}
        return SimRequest(tick=tick, workflow=workflow, input=payload, key=f"{self.scenario.name}-{self.seed}-{tick}")

    def _prompt(
        self, rng: random.Random, workflow: str, traffic: WorkflowTraffic, category: str, fields: dict[str, Any]
    ) -> str:
        if traffic.labels:
            label = _draw(rng, self._labels[(workflow, category)])
            return ticket_text(rng, category, label, traffic.labels, fields)
        return report_request(rng, category, fields)


class OutcomeReporter:
    """Schedules the outcome events the world reports for finished runs.

    Per run: with probability `never_share` nothing is ever reported; with
    `late_share` the outcome comes `delay_min_runs`..`delay_max_runs` ticks late;
    otherwise at the run's own tick. A reported outcome is delivered a second
    time (same event_id) with probability `twice_share`, up to
    `duplicate_delay_max_runs` ticks after the first. `success` is whether the
    agent's answer was correct; `human_override` whether a human rejected or
    edited it. All draws are seeded by (seed, request key): the same runs give
    the same outcome stream.

    >>> from flywheel.sim import Environment, load_scenario
    >>> scenario = load_scenario("stationary")
    >>> reporter = OutcomeReporter(Environment(scenario), scenario, seed=1)
    >>> plans = [reporter.observe(r.tick, f"run-{r.tick}", r, response_correct=True)
    ...          for r in TrafficGenerator(scenario, runs=1000)]
    >>> sum(not p for p in plans), sum(len(p) == 2 for p in plans)  # never reported, twice
    (89, 34)
    >>> [(due, e.event_id) for due, e in plans[3]]  # run 3's outcome comes 548 runs late
    [(551, 'run-3/outcome')]
    >>> [e.run_id for e in reporter.due(3)]
    ['run-1', 'run-2']
    """

    def __init__(self, environment: Environment, scenario: Scenario | None = None, seed: int | None = None):
        self.environment = environment
        self.scenario = environment.scenario if scenario is None else scenario
        self.seed = environment.seed if seed is None else seed
        self._reporting = self.scenario.reporting
        self._heap: list[tuple[int, int, OutcomeEvent]] = []
        self._seq = 0
        self.counts = {"observed": 0, "never": 0, "late": 0, "twice": 0}

    def observe(
        self,
        tick: int,
        run_id: str,
        request: SimRequest,
        response_correct: bool,
        quality: float | None = None,
        human: str | None = None,
    ) -> list[tuple[int, OutcomeEvent]]:
        """Schedule the outcome of a finished run; returns the deliveries as (due tick, event).

        `quality`: the answer's quality in [0, 1] (e.g. SimResponse.score); None: 1/0 for
        classification workflows, a graded score (higher when correct) for reports.
        `human`: the human's decision on the run ("approve", "reject", "edit") if one reviewed it.
        """
        r = self._reporting
        rng = random.Random(stable_seed(self.seed, "outcome", request.key))
        self.counts["observed"] += 1
        u = rng.random()
        if u < r.never_share:
            self.counts["never"] += 1
            return []
        due = tick
        if u < r.never_share + r.late_share:
            due = tick + rng.randint(r.delay_min_runs, r.delay_max_runs)
            self.counts["late"] += 1
        if quality is None:
            if self.scenario.workflows[request.workflow].labels:
                quality = 1.0 if response_correct else 0.0
            else:
                quality = self.environment.graded_score(response_correct, request.key)
        event = OutcomeEvent(
            event_id=f"{run_id}/outcome",
            run_id=run_id,
            success=response_correct,
            quality=quality,
            human_override=human in ("reject", "edit"),
            source="simulator",
        )
        deliveries = [(due, event)]
        if rng.random() < r.twice_share:
            self.counts["twice"] += 1
            again = replace(event)  # a second delivery: equal, not the same object
            deliveries.append((due + rng.randint(0, r.duplicate_delay_max_runs), again))
        for when, e in deliveries:
            heapq.heappush(self._heap, (when, self._seq, e))
            self._seq += 1
        return deliveries

    def due(self, tick: int) -> list[OutcomeEvent]:
        """The events due at or before `tick` (removed from the schedule), in delivery order."""
        out: list[OutcomeEvent] = []
        heap = self._heap
        while heap and heap[0][0] <= tick:
            out.append(heapq.heappop(heap)[2])
        return out

    def drain(self) -> list[OutcomeEvent]:
        """Every event still scheduled, in delivery order (the schedule is left empty)."""
        out = [e for _, _, e in sorted(self._heap)]
        self._heap.clear()
        return out

    @property
    def pending(self) -> int:
        """Number of deliveries still scheduled."""
        return len(self._heap)


class HumanReviewer:
    """The human at a workflow's human step: approves, rejects or edits an answer.

    A wrong answer is caught with `catch_probability` (then edited to the right
    answer with `edit_share`, else rejected); a correct answer is rejected with
    `false_alarm_probability`. Draws are seeded by (seed, request key, answer).
    """

    def __init__(self, scenario: Scenario, seed: int | None = None):
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self._reviewer = scenario.reporting.reviewer

    def review(
        self, request: SimRequest, answer: dict[str, Any], correct: bool
    ) -> tuple[Decision, dict[str, Any] | None]:
        """The decision on `answer` and, for "edit", the edited answer (else None)."""
        p = self._reviewer
        shown = json.dumps(answer, sort_keys=True, default=str)
        rng = random.Random(stable_seed(self.seed, "review", request.key, shown))
        if correct:
            return ("reject", None) if rng.random() < p.false_alarm_probability else ("approve", None)
        if rng.random() >= p.catch_probability:
            return "approve", None
        if rng.random() >= p.edit_share:
            return "reject", None
        return "edit", self._fixed(rng, request, answer)

    def _fixed(self, rng: random.Random, request: SimRequest, answer: dict[str, Any]) -> dict[str, Any]:
        traffic = self.scenario.workflows[request.workflow]
        if traffic.labels:
            prompt = str(request.input.get(traffic.prompt_field, ""))
            return {**answer, "label": truth_label(prompt, traffic.labels)}
        category = str(request.input.get(traffic.category_field, ""))
        audience = str(request.input.get("audience", "internal"))
        return {**answer, "report": report_text(rng, category, audience, on_topic=True)}
