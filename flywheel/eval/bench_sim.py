"""The simulation benchmark: the learning system against the best static config and an oracle.

Through the served path (flywheel.eval.served.ServedLoop: no HTTP, no Ray, but the
engines, ledger, learning loop, governor and MLflow registry production runs),
`batch` ticks at a time:

1. the TrafficGenerator gives the tick's request; its workflow's Engine runs it with
   the live config (the initial config, then the registry's champion): the route
   step decides with the champion's policy state and logs its version
   (`<workflow>@v<n>`), the SimAgent answers as the Environment's model
   (`ModelUnavailable` is a failed run, whose failure outcome the service stores with
   the run, as the runtime does), the gate compares the answer's confidence with the
   champion's threshold; below it the run waits for a human;
2. the batch's runs are written to the ledger; each waiting run is resumed with the
   HumanReviewer's verdict (approve, reject or edit), which is an outcome too, as the
   runtime posts it;
3. the OutcomeReporter schedules each answered run's outcome (on time, late, never,
   twice); those due are posted to the ledger, which stores each event_id once;
4. the LearningLoop learns the new outcomes and, every `publish_every_outcomes`
   outcomes or `publish_every_s` seconds of simulated time (`runs_per_s` runs a
   second), proposes a version; the Governor judges it by configs/policies.yaml
   (thresholds move at most 0.1 a version) and registers it in MLflow; a new
   champion is applied to the engines' ConfigBook before the next batch.

`served` in the result says how many versions were judged (by status), how many
champions went live and how many runs each kind of config decided; the thresholds'
trajectories are the served ones (the learner's own are `learner_thresholds`).

Reward: the workflow objective applied to the answer's quality, cost and latency
(quality_weight * quality - cost_weight * cost - latency_weight * latency). The
override penalty is left out of the comparison: it depends on the gate, not on
the route, and the static config and the oracle have no gate of their own; it is
reported beside (`realized.system_with_overrides`). A failed run's reward is 0.

All three policies are scored on the same request stream by EXPECTED reward of
the arm each picks, at that tick: Environment.quality (for reports, the expected
graded score 0.825 q + 0.3 (1 - q)) and mean cost and latency (mean output tokens
of the model on that input), 0 for an unavailable model. That is pseudo-regret:
it does not count the coin flips of the world, which no policy controls. The
realized rewards (the environment's draws for every arm on the same requests)
are reported under `realized`.

- system: the arm the served policy chose;
- static: per workflow, the single arm with the best total reward in hindsight;
- oracle: per request, the arm of highest expected reward at that tick.

regret = oracle - system, static_regret = oracle - static (cumulative, summed
over workflows), regret_ratio_vs_static = regret / static_regret.

recovery_runs: N is the tick of the scenario's first abrupt event (degrade,
outage or add). A workflow is affected when the oracle's route shares over its
last 1,000 runs before N and its first 1,000 runs from N differ by at least
`tolerance` for some arm. For an affected workflow, after its j-th run from N
(j >= window), compare the system's and the oracle's route shares over its last
`window` runs (all from N on): recovered when every arm's shares differ by at
most `tolerance`. Its recovery is the first such j, in runs of that workflow
(so never below `window`); recovery_runs is the largest over the affected
workflows. It is None when the scenario has no abrupt event within the runs
(then `recovery` is None too) or when a workflow never recovers (then
`recovery.recovered` is false). `gap_before` is the same share
gap over the `window` runs just before N: how far the system's routing already
was from the oracle's when the change came.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from flywheel.eval.calibration import ece_per_arm
from flywheel.eval.served import ServedLoop, SimClock
from flywheel.eval.sim_summary import effective_params, summarize
from flywheel.ledger.records import OutcomeEvent, RunRecord
from flywheel.sim import (
    Environment,
    HumanReviewer,
    ModelUnavailable,
    OutcomeReporter,
    Scenario,
    TrafficGenerator,
    load_scenario,
    spec_mismatches,
)
from flywheel.sim.agent import TICK_KEY, SimAgent
from flywheel.workflows.agent_io import AgentRequest, AgentResult
from flywheel.workflows.engine import HumanDecision
from flywheel.workflows.loading import load_dir, packaged_configs
from flywheel.workflows.reward import reward
from flywheel.workflows.spec import Objective, WorkflowSpec

GRADED_RIGHT, GRADED_WRONG = 0.825, 0.3  # mean graded score of a right / wrong report
TICKET_TOKENS_OUT = 23.0  # mean of randint(6, 40): a label's output tokens
RUNS_PER_S = 50.0
"""Simulated traffic: runs per second of the clock the learning loop's `publish_every_s` reads."""
BATCH = 25
"""Runs per ledger batch; the learner steps (and publishes what is due) after each batch."""
PUBLISH_EVERY_OUTCOMES, PUBLISH_EVERY_S = 200, 10.0
"""The learning loop's cadence: configs/app.yaml's `learning` defaults."""


class SimAgents:
    """The AgentCaller of the simulated world: one SimAgent per model, named by its model."""

    def __init__(self, environment: Environment, models: list[str]):
        self.agents = {m: SimAgent(environment, m) for m in models}

    async def __call__(self, agent: str, request: AgentRequest) -> AgentResult:
        return await self.agents[agent].run(request)


class ExpectedReward:
    """Expected reward of each model on a request at a tick: the oracle's knowledge."""

    def __init__(self, scenario: Scenario, environment: Environment):
        self.scenario = scenario
        self.environment = environment
        self._length = {
            wf: next((n for n in t.numbers if "length" in n), None) for wf, t in scenario.workflows.items()
        }

    def of(self, model: str, workflow: str, data: dict[str, Any], tick: int, objective: Objective) -> float:
        env = self.environment
        if not env.available(model, tick):
            return 0.0
        traffic = self.scenario.workflows[workflow]
        m = self.scenario.model(model)
        q = env.quality(model, workflow, env.category_of(workflow, data), tick)
        if traffic.labels:
            quality, tokens_out = q, TICKET_TOKENS_OUT * m.verbosity
        else:
            field = self._length[workflow]
            target = data.get(field) if field else None
            words = (float(target) if isinstance(target, (int, float)) else 300.0) * 1.025  # E[U(.8, 1.25)]
            quality, tokens_out = q * GRADED_RIGHT + (1 - q) * GRADED_WRONG, words * 1.35 * m.verbosity
        tokens_in = max(1, len(str(data.get(traffic.prompt_field, ""))) // 4)
        cost = (tokens_in * m.price.input_per_1k + tokens_out * m.price.output_per_1k) / 1000
        latency = m.latency.mean_s + tokens_out * m.latency.per_1k_output_s / 1000
        return reward(objective, quality=quality, cost=cost, latency_s=latency)


def run_sim(
    scenario: str | Path | Scenario,
    runs: int | None = None,
    seed: int = 0,
    *,
    learner: dict[str, Any] | None = None,
    workflows_dir: str | Path | None = None,
    window: int = 200,
    tolerance: float = 0.10,
    progress: Callable[[int], None] | None = None,
    trace: list[tuple[int, str, str, str, dict[str, float]]] | None = None,
    runs_per_s: float = RUNS_PER_S,
    batch: int = BATCH,
    publish_every_outcomes: int = PUBLISH_EVERY_OUTCOMES,
    publish_every_s: float = PUBLISH_EVERY_S,
    folder: str | Path | None = None,
) -> dict[str, Any]:
    """Run the benchmark through the served path; returns the JSON-ready result (see the module docstring).

    `seed` seeds the learners, and the world at the scenario's seed + `seed`;
    `learner`: extra keyword arguments of every WorkflowLearner; `progress` is called
    with the ticks done every 500 ticks; `trace`, when given, gets one
    (tick, workflow, system arm, oracle arm, expected reward of every arm) per run.
    `runs_per_s`, `batch`, `publish_every_*`: the served path's pace (module constants);
    `folder` keeps the ledger and the MLflow registry (default: a temporary folder).
    """
    started = time.perf_counter()
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    sim = _ServedSim(sc, runs, seed, _specs(sc, workflows_dir), runs_per_s=runs_per_s, batch=batch)
    with tempfile.TemporaryDirectory(prefix="flywheel-sim-") as tmp:
        served = ServedLoop(
            sim.specs, SimAgents(sim.env, list(sim.env.models)), folder or tmp, seed=seed, learner=learner,
            publish_every_outcomes=publish_every_outcomes, publish_every_s=publish_every_s, clock=SimClock(),
        )
        setup_s = time.perf_counter() - started
        try:
            result = asyncio.run(sim.run(served, window, tolerance, progress, trace))
        finally:
            served.close()
    result["served"]["setup_s"] = round(setup_s, 2)  # the ledger's and MLflow's tables created
    result["wall_s"] = round(time.perf_counter() - started, 2)
    return result


class _ServedSim:
    """One scenario's traffic through a ServedLoop, tallied against the static config and the oracle."""

    def __init__(self, sc: Scenario, runs: int | None, seed: int, specs: dict[str, WorkflowSpec], *,
                 runs_per_s: float, batch: int):
        self.sc, self.seed, self.specs = sc, seed, specs
        self.world_seed = sc.seed + seed
        self.n_runs = sc.runs if runs is None else runs
        self.runs_per_s, self.batch = runs_per_s, max(1, batch)
        self.env = Environment(sc, seed=self.world_seed)
        self.oracle_model = ExpectedReward(sc, self.env)
        self.reporter = OutcomeReporter(self.env, sc, seed=self.world_seed)
        self.reviewer = HumanReviewer(sc, seed=self.world_seed)
        self.traffic = TrafficGenerator(sc, seed=self.world_seed, runs=self.n_runs)
        self.arms = {wf: spec.arms for wf, spec in specs.items()}
        self.totals = {wf: Counter() for wf in specs}  # "system", "oracle", "arm:<a>", realized "r:..."
        self.routes: dict[str, list[tuple[int, str, str]]] = {wf: [] for wf in specs}  # (tick, system, oracle)
        self.gate_stats = {wf: Counter() for wf in specs}
        self.span = max(1, -(-self.n_runs // 10))  # ticks per window of the gate's figures over time
        self.gate_windows: dict[str, list[Counter]] = {wf: [Counter() for _ in range(10)] for wf in specs}
        self.trajectory: dict[str, dict[str, list[tuple[int, float]]]] = {
            wf: {g: [] for g in s.gates} for wf, s in specs.items()
        }
        self.counts = Counter()  # duplicates, human verdicts, failures reported, outcomes stored
        self.calib: dict[str, list[tuple[str, float, float]]] = {wf: [] for wf in specs}  # (arm, predicted, got)

    async def run(self, served: ServedLoop, window: int, tolerance: float,
                  progress: Callable[[int], None] | None,
                  trace: list[tuple[int, str, str, str, dict[str, float]]] | None) -> dict[str, Any]:
        started = time.perf_counter()
        every = max(1, self.n_runs // 20)
        for first in range(0, self.n_runs, self.batch):
            ticks = range(first, min(self.n_runs, first + self.batch))
            runs: list[RunRecord] = []
            waiting: list[tuple[RunRecord, HumanDecision]] = []
            events: list[OutcomeEvent] = []
            for t in ticks:
                served.clock.now = t / self.runs_per_s
                run, review = await self._tick(served, t, events, trace)
                runs.append(run)
                if review is not None:
                    waiting.append((run, review))
                if progress is not None and (t + 1) % 500 == 0:
                    progress(t + 1)
            failures = served.store(runs)  # a failed run's outcome is stored with it
            self.counts["stored"] += failures
            self.counts["failures_reported"] += failures
            for run, decision in waiting:
                events.append((await served.resume(run, decision))[1])
            events.extend(self.reporter.due(ticks[-1]))
            report = served.post(events)
            self.counts["duplicates"] += report.duplicate
            self.counts["stored"] += report.new
            for t in ticks:  # the thresholds these runs were gated with
                if t % every == 0 or t == self.n_runs - 1:
                    for wf in self.specs:
                        for gate_id, value in served.live_thresholds(wf).items():
                            self.trajectory[wf][gate_id].append((t, value))
            served.learn()
        return self._result(served, window, tolerance, time.perf_counter() - started)

    async def _tick(self, served: ServedLoop, t: int, events: list[OutcomeEvent],
                    trace: list[tuple[int, str, str, str, dict[str, float]]] | None
                    ) -> tuple[RunRecord, HumanDecision | None]:
        """Run tick t's request through the engine; tally it; schedule its outcome."""
        req = self.traffic.at(t)
        wf = req.workflow
        obj, tot, arms = self.specs[wf].objective, self.totals[wf], self.arms[wf]
        run_id = f"{req.key}/{wf}"
        run = await served.start(run_id, wf, req.input, {TICK_KEY: str(t)})
        assert run.decision is not None
        arm = run.decision.arm
        predicted = served.loop.learners[wf].bandit.predict_one(run.decision.features).get(arm)
        expected = {a: self.oracle_model.of(a, wf, req.input, t, obj) for a in arms}
        best = max(arms, key=expected.__getitem__)
        tot["system"] += expected[arm]
        tot["oracle"] += expected[best]
        self.routes[wf].append((t, arm, best))
        if trace is not None:
            trace.append((t, wf, arm, best, expected))
        realized = {}
        for a in arms:
            try:
                r = self.env.respond(a, wf, req.input, t)
                realized[a] = (reward(obj, quality=r.score, cost=r.cost, latency_s=r.latency_s), r)
            except ModelUnavailable:
                realized[a] = (0.0, None)
            tot[f"arm:{a}"] += expected[a]
            tot[f"r:arm:{a}"] += realized[a][0]
        tot["r:system"] += realized[arm][0]
        tot["r:oracle"] += realized[best][0]
        resp = realized[arm][1]
        if predicted is not None:  # the learner's predicted quality of the arm, then what it got
            self.calib[wf].append((arm, predicted, 0.0 if resp is None else resp.score))
        if resp is None or run.status == "failed":
            # The service stores a failed run's outcome with the run (ServedLoop.store, as the runtime does).
            self.gate_stats[wf]["failed"] += 1
            if run.status != "failed":  # answered, yet the world says the model is down: the client says so
                self.counts["failures_reported"] += 1
                events.append(OutcomeEvent(event_id=f"{run_id}/failed", run_id=run_id, success=False, quality=0.0,
                                           source="simulator"))
            return run, None
        attended = run.status == "waiting"
        human, review = None, None
        if attended:
            human, edited = self.reviewer.review(req, resp.answer, resp.correct)
            review = HumanDecision(verdict=human, reviewer="simulated", answer=edited)
            self.counts["human_verdicts"] += 1
        for c in (self.gate_stats[wf], self.gate_windows[wf][t // self.span]):
            c["answered"] += 1
            c["human"] += attended
            c["overridden"] += human in ("reject", "edit")
            c["unattended"] += not attended
            c["unattended_wrong"] += not attended and not resp.correct
        override = human in ("reject", "edit")
        tot["r:system_with_overrides"] += realized[arm][0] - (obj.override_penalty if override else 0.0)
        self.reporter.observe(t, run_id, req, resp.correct, resp.score, human)
        return run, review

    def _result(self, served: ServedLoop, window: int, tolerance: float, wall: float) -> dict[str, Any]:
        learners = served.loop.learners
        result = summarize(self.sc, self.specs, learners, self.totals, self.routes, self.gate_stats,
                           self.trajectory, window, tolerance)
        n_runs = self.n_runs
        for wf, windows in self.gate_windows.items():
            result["workflows"][wf]["gate_over_time"] = [
                {"from_run": i * self.span, "to_run": min(n_runs, (i + 1) * self.span),
                 "human_share": round(w["human"] / max(1, w["answered"]), 4),
                 "unattended_error_rate": round(w["unattended_wrong"] / max(1, w["unattended"]), 4)}
                for i, w in enumerate(windows) if w["answered"]
            ]
            result["workflows"][wf]["learner_thresholds"] = {
                g: round(v, 4) for g, v in learners[wf].thresholds_now().items()
            }
        stats = served.stats
        published = sum(n for label, n in stats.decided_with.items() if "@v" in label)
        result.update(
            runs=n_runs,
            seed=self.seed,
            world_seed=self.world_seed,
            outcomes={**self.reporter.counts, "duplicates_skipped": self.counts["duplicates"],
                      "human_verdicts": self.counts["human_verdicts"],
                      "failures_reported": self.counts["failures_reported"], "stored": self.counts["stored"],
                      "learned": stats.learned, "never_arrived_in_time": self.reporter.pending},
            served={
                "versions_judged": dict(stats.judged),
                "champions_applied": len(stats.applied),
                "last_live": {wf: served.live_config(wf).version for wf in self.specs},
                "runs_decided_by_published_versions": published,
                "runs_decided_by_initial_config": n_runs - published,
                "runs_per_s_simulated": self.runs_per_s,
                "batch": self.batch,
                "publish_every_outcomes": served.loop.publish_every_outcomes,
                "publish_every_s": served.loop.publish_every_s,
            },
            calibration={wf: ece_per_arm(self.arms[wf], *zip(*rows)) if rows else {}
                         for wf, rows in self.calib.items()},
            learner_params=effective_params(next(iter(learners.values()))),
            runs_per_s=round(n_runs / max(wall, 1e-9), 1),  # the runs alone, setup left out
        )
        return result


def _specs(sc: Scenario, workflows_dir: str | Path | None) -> dict[str, WorkflowSpec]:
    directory = Path(workflows_dir) if workflows_dir is not None else packaged_configs() / "workflows"
    all_specs = load_dir(directory, WorkflowSpec)
    specs = {wf: all_specs[wf] for wf in sc.workflows}
    problems = [p for spec in specs.values() for p in spec_mismatches(sc, spec)]
    if problems:
        raise ValueError("scenario and workflows disagree:\n  " + "\n  ".join(problems))
    return specs


