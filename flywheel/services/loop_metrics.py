"""Sets the learning loop's gauges (human share, unattended error rate vs target, drift
events, version changes, pending reviews, outbox depth, MLflow reachable) from the ledger
and the registry; called by whatever drives the loop (local task, learner deployment)."""

from __future__ import annotations

import time
from typing import Callable

from flywheel.learners.loop import LearningLoop
from flywheel.ledger.observe import loop_snapshot
from flywheel.registry import views
from flywheel.services.metrics import Metrics


class LoopGauges:
    """Refreshes the loop's gauges at most every `every_s` seconds (the queries aggregate)."""

    def __init__(self, metrics: Metrics, loop: LearningLoop, *, every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.metrics = metrics
        self.loop = loop
        self.every_s = every_s
        self.clock = clock
        self._last = float("-inf")

    def refresh(self, force: bool = False) -> bool:
        """Set the gauges if their time has come (or `force`); blocking: call in a thread."""
        now = self.clock()
        if not force and now - self._last < self.every_s:
            return False
        self._last = now
        workflows = list(self.loop.specs)
        self.metrics.loop(
            loop_snapshot(self.loop.ledger.engine, workflows),
            {wf: s.targets.max_unattended_error_rate for wf, s in self.loop.specs.items()},
        )
        registry = self.loop.registry
        if registry is not None:
            try:
                pending = {wf: 0 for wf in workflows}
                for v in views.proposals(registry, workflows):
                    pending[v.workflow] += 1
            except Exception:  # MLflow down: say so; the pending counts keep their last value
                self.metrics.registry(reachable=False, pending={})
            else:
                self.metrics.registry(reachable=True, pending=pending)
        return True
