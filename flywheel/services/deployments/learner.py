"""The learner deployment: drives the learning loop next to, never on, the request path.

The ingress tells it which outcome positions were just stored (in batches);
it also polls the ledger, so a lost notification only delays learning. New
versions go to the registry (MLflow) and to the router deployment, whose
watchers swap them into every ingress replica. When `tuning.every_outcomes` or
`tuning.after_drift` says so (off by default), it also starts a workflow's tune
job by itself (a TuneTrigger decides; the job runs in a thread, on this
replica's Ray) and keeps what the job reported in its status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ray import serve

from flywheel.learners.tune_trigger import TuneTrigger
from flywheel.registry.governor import Outcome
from flywheel.registry.mlflow_registry import RegistryUnavailable
from flywheel.services.loop_metrics import LoopGauges
from flywheel.services.metrics import Metrics, RayBackend
from flywheel.services.wiring import learning_loop
from flywheel.services.settings import AppSettings

log = logging.getLogger("ray.serve")


@serve.deployment(name="learner", num_replicas=1, max_ongoing_requests=1000)
class LearnerDeployment:
    async def __init__(self, settings: dict[str, Any]):
        self.settings = AppSettings.model_validate(settings)
        self.loop = await asyncio.to_thread(learning_loop, self.settings)
        self.gauges = LoopGauges(Metrics(RayBackend()), self.loop)  # exported by Ray, as Serve's own
        self.router = serve.get_deployment_handle("router", app_name=serve.get_replica_context().app_name)
        self.published: list[tuple[str, float, str]] = []  # (version, unix time registered, status)
        self.registry_error: str | None = None
        self._failed_at = 0.0
        self._wake = asyncio.Event()
        tuning = self.settings.tuning
        self.trigger = TuneTrigger(every_outcomes=tuning.every_outcomes, after_drift=tuning.after_drift)
        self.tune_jobs: list[dict[str, Any]] = []  # what each job started by itself reported
        self._tune_tasks: set[asyncio.Task] = set()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def notify(self, positions: list[int]) -> int:
        """New outcomes are in the ledger (their positions); learn soon. Returns the count."""
        self._wake.set()
        return len(positions)

    async def _run(self) -> None:
        poll = self.settings.learning.poll_s
        while True:
            try:
                learned = await asyncio.to_thread(self.loop.step)
                await asyncio.to_thread(self.loop.publish_due)
                await self._publish_pending()
                self._start_due_tune_jobs()
                await asyncio.to_thread(self.gauges.refresh)  # after publishing: never delays a version
                if learned:
                    continue  # more may be waiting
            except asyncio.CancelledError:
                raise
            except Exception:  # the registry or the ledger down: keep learning state, retry
                log.exception("learning step failed; retrying")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll)
            except asyncio.TimeoutError:
                pass

    async def status(self) -> dict[str, Any]:
        return {
            "positions": dict(self.loop.positions),
            "updates": {wf: l.n_updates for wf, l in self.loop.learners.items()},
            "published": list(self.published),
            "registry_error": self.registry_error,
            "tune_running": sorted(self.trigger.running),
            "tune_jobs": list(self.tune_jobs),
        }

    def _start_due_tune_jobs(self) -> None:
        """Start a tune job for each workflow the trigger finds due (none unless configured)."""
        if not self.trigger.enabled:
            return
        learners = self.loop.learners
        due = self.trigger.due({wf: l.n_updates for wf, l in learners.items()},
                               {wf: len(l.drift_events) for wf, l in learners.items()})
        for wf in due:
            self.trigger.started(wf)
            task = asyncio.get_running_loop().create_task(self._tune(wf))
            self._tune_tasks.add(task)
            task.add_done_callback(self._tune_tasks.discard)

    async def _tune(self, workflow: str) -> None:
        from flywheel.services.tuning import tune_workflow

        try:
            out = await asyncio.to_thread(tune_workflow, self.settings, workflow,
                                          progress=False, publish=False)
        except Exception as e:  # too few outcomes, no learned champion, Ray busy: try when next due
            log.warning("%s: tune job failed: %s", workflow, e)
            out = {"workflow": workflow, "error": str(e)}
        finally:
            self.trigger.finished(workflow)
        self.tune_jobs.append(out)
        await self._publish_pending()

    async def publish_now(self) -> list[str]:
        """Propose every workflow with something learned, now (for operators and tests)."""
        await asyncio.to_thread(self.loop.step)
        await asyncio.to_thread(self.loop.publish_due, True)
        return [o.number and f"{o.workflow}@v{o.number}" for o in await self._publish_pending()]

    async def _publish_pending(self) -> list[Outcome]:
        if self.registry_error is not None and time.monotonic() - self._failed_at < 2.0:
            return []  # MLflow was down a moment ago: learn on, try again shortly
        try:
            done = await asyncio.to_thread(self.loop.publish_pending)
            self.registry_error = None
        except RegistryUnavailable as e:  # the versions wait in the ledger
            if self.registry_error is None:
                log.warning("registry unavailable; versions wait in the ledger: %s", e)
            self.registry_error = str(e)
            self._failed_at = time.monotonic()
            return []
        for o in done:
            self.published.append((f"{o.workflow}@v{o.number}", time.time(), o.status))
            if o.champion_changed:
                await self.router.refresh.remote(o.workflow)
        return done
