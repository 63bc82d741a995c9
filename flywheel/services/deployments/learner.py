"""The learner deployment: drives the learning loop next to, never on, the request path.

The ingress tells it which outcome positions were just stored (in batches);
it also polls the ledger, so a lost notification only delays learning. New
versions go to the registry (MLflow) and to the router deployment, whose
watchers swap them into every ingress replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ray import serve

from flywheel.services.learning import LearningLoop, Published
from flywheel.services.settings import AppSettings

log = logging.getLogger("ray.serve")


@serve.deployment(name="learner", num_replicas=1, max_ongoing_requests=1000)
class LearnerDeployment:
    async def __init__(self, settings: dict[str, Any]):
        self.settings = AppSettings.model_validate(settings)
        self.loop = await asyncio.to_thread(LearningLoop.from_settings, self.settings)
        self.router = serve.get_deployment_handle("router", app_name=serve.get_replica_context().app_name)
        self.published: list[tuple[str, float]] = []  # (version, unix time it went to the router)
        self._wake = asyncio.Event()
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
                for p in await asyncio.to_thread(self.loop.publish_due):
                    await self._publish(p)
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
        }

    async def publish_now(self) -> list[str]:
        """Publish every workflow with something learned, now (for operators and tests)."""
        await asyncio.to_thread(self.loop.step)
        out = []
        for p in await asyncio.to_thread(self.loop.publish_due, True):
            await self._publish(p)
            out.append(p.config.version)
        return out

    async def _publish(self, p: Published) -> None:
        await self.router.publish.remote(p.config.model_dump(), p.policy_state)
        self.published.append((p.config.version, time.time()))
