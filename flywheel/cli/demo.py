"""The demo: a simulator scenario played against a running service over HTTP.

Requests come from the scenario's traffic; the service routes and answers; the
simulated world judges the answers and reports outcomes (on time, late, never,
twice); a simulated human reviews the runs that wait at a checkpoint.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flywheel.sim import (
    Environment,
    HumanReviewer,
    ModelUnavailable,
    OutcomeReporter,
    TrafficGenerator,
    load_scenario,
)
from flywheel.services.agents.sim import TICK_KEY
from flywheel.services.settings import SimulatorSettings
from flywheel.ledger.records import OutcomeEvent


RUN_TIMEOUT_S = 600.0


@dataclass
class DemoSummary:
    runs: int = 0
    failed: int = 0
    reviewed: int = 0
    outcomes_sent: int = 0
    outcomes_new: int = 0
    outcomes_duplicate: int = 0
    outcomes_rejected: int = 0
    arms: dict[str, int] = field(default_factory=dict)


async def _post(client: httpx.AsyncClient, url: str, json: dict, tries: int = 30) -> httpx.Response:
    """POST as a well-behaved client: on 429, wait the Retry-After the service asked for, then again."""
    for _ in range(tries):
        r = await client.post(url, json=json)
        if r.status_code != 429:
            return r
        await asyncio.sleep(min(5.0, float(r.headers.get("retry-after", "1") or 1)))
    return r


def _event_json(e: OutcomeEvent) -> dict:
    return {
        "event_id": e.event_id,
        "run_id": e.run_id,
        "success": e.success,
        "quality": e.quality,
        "human_override": e.human_override,
        "source": e.source,
    }


class DemoDriver:
    """Plays the scenario against the service at ``url``, as the service token ``token``."""

    def __init__(
        self,
        url: str,
        simulator: SimulatorSettings,
        seed: int | None = None,
        outcome_batch: int = 50,
        *,
        token: str,
    ):
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.scenario = load_scenario(simulator.scenario, simulator.scenarios_dir)
        self.environment = Environment(self.scenario)
        self.traffic = TrafficGenerator(self.scenario, seed=seed)
        self.reporter = OutcomeReporter(self.environment, self.scenario, seed=seed)
        self.reviewer = HumanReviewer(self.scenario, seed=seed)
        self.outcome_batch = outcome_batch
        self.summary = DemoSummary()
        self._done_tick = -1
        self._started = time.monotonic()

    async def run(self, runs: int | None = None, *, concurrency: int = 8, progress: bool = False,
                  interval_s: float = 3.0) -> DemoSummary:
        total = runs or self.scenario.runs
        self._started = time.monotonic()
        ticks = iter(range(total))
        console = Console()
        bar = Progress(TextColumn("demo"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=console, disable=not progress, transient=True)
        task = bar.add_task("runs", total=total)
        limits = httpx.Limits(max_connections=concurrency * 2)
        # a run on real CPU models waits its turn behind the others: minutes on a loaded 2-core machine
        async with httpx.AsyncClient(base_url=self.url, timeout=RUN_TIMEOUT_S, limits=limits,
                                     headers=self.headers) as client:

            async def worker() -> None:
                for tick in ticks:
                    await self._one(client, tick)
                    bar.advance(task)
                    if tick % self.outcome_batch == 0:
                        await self._send(client, self.reporter.due(self._done_tick))

            reporter_task = None
            with bar:
                if progress:
                    reporter_task = asyncio.create_task(self._report(client, console, interval_s))
                workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
                try:
                    await asyncio.gather(*workers)
                    await self._send(client, self.reporter.drain())
                finally:
                    for t in workers + ([reporter_task] if reporter_task else []):
                        t.cancel()
                    await asyncio.gather(*workers, *( [reporter_task] if reporter_task else []),
                                         return_exceptions=True)
            if progress:
                await self._print_line(client, console, time.monotonic() - self._started)
                s = self.summary
                console.print(
                    f"done: {s.runs} runs ({s.failed} failed, {s.reviewed} reviewed by a human); "
                    f"outcomes sent {s.outcomes_sent}: {s.outcomes_new} new, "
                    f"{s.outcomes_duplicate} duplicate, {s.outcomes_rejected} rejected"
                )
        return self.summary

    async def _one(self, client: httpx.AsyncClient, tick: int) -> None:
        req = self.traffic.at(tick)
        r = await _post(client, f"/v1/workflows/{req.workflow}/runs",
                              json={"input": req.input, "metadata": {TICK_KEY: str(tick)}})
        r.raise_for_status()
        run = r.json()
        arm = run["decision"]["arm"]
        self.summary.runs += 1
        self.summary.arms[arm] = self.summary.arms.get(arm, 0) + 1
        human = None
        if run["status"] == "failed":  # the service stored its failure outcome with it: nothing to report
            self.summary.failed += 1
            self._done_tick = max(self._done_tick, tick)
            return
        if (label := self.environment.truth(req.workflow, req.input)) is not None and "label" in (run["answer"] or {}):
            # a classification is judged on the answer given (a real model's or a simulated one's)
            correct = run["answer"]["label"] == label
            score = 1.0 if correct else 0.0
        else:
            try:
                truth = self.environment.respond(arm, req.workflow, req.input, tick)
                correct, score = truth.correct, truth.score
            except ModelUnavailable:
                correct, score = False, 0.0
        if run["status"] == "waiting":
            human, edited = self.reviewer.review(req, run["answer"] or {}, correct)
            body = {"decision": human, "reviewer": "sim-reviewer"}
            if edited is not None:
                body["answer"] = edited
            rr = await _post(client, f"/v1/runs/{run['run_id']}/resume", json=body)
            rr.raise_for_status()
            self.summary.reviewed += 1
        self.reporter.observe(tick, run["run_id"], req, response_correct=correct, quality=score, human=human)
        self._done_tick = max(self._done_tick, tick)

    async def _send(self, client: httpx.AsyncClient, events: list[OutcomeEvent]) -> None:
        if not events:
            return
        r = await _post(client, "/v1/outcomes", json={"events": [_event_json(e) for e in events]})
        r.raise_for_status()
        body = r.json()
        self.summary.outcomes_sent += len(events)
        self.summary.outcomes_new += body["new"]
        self.summary.outcomes_duplicate += body["duplicate"]
        self.summary.outcomes_rejected += len(body["rejected"])

    async def _report(self, client: httpx.AsyncClient, console: Console, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self._print_line(client, console, time.monotonic() - self._started)

    async def _print_line(self, client: httpx.AsyncClient, console: Console, elapsed: float) -> None:
        parts = []
        for wf in self.scenario.workflows:
            r = await client.get(f"/v1/workflows/{wf}/stats")
            if r.status_code != 200:
                continue
            st = r.json()
            shares = " ".join(f"{a} {p:.0%}" for a, p in st["route_shares"].items())
            reward = "-" if st["mean_reward"] is None else f"{st['mean_reward']:.3f}"
            version = st["config_version"].split("@")[-1]
            parts.append(f"{wf} {version}: {st['runs']} runs, reward {reward}, routes [{shares}]")
        console.print(f"[{elapsed:5.0f}s] " + " | ".join(parts), markup=False, soft_wrap=True)
