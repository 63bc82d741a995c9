"""When the slow loop starts a tune job by itself: every N outcomes of a workflow, or after a drift.

A plain object the learner deployment asks after each learning step. It is fed
each workflow's running totals (outcomes learned, drifts seen) and answers which
workflows are due; it counts from where the workflow's last job started, runs at
most one job per workflow at a time, and with `every_outcomes=0` and
`after_drift=False` (the default) is never due.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(slots=True)
class TuneTrigger:
    """Which workflows are due a tune job, from their totals of outcomes learned and drifts seen.

    >>> t = TuneTrigger(every_outcomes=100)
    >>> t.due({"wf": 0}, {}), t.due({"wf": 99}, {}), t.due({"wf": 100}, {})
    ([], [], ['wf'])
    >>> t.started("wf"); t.due({"wf": 150}, {})  # one job at a time
    []
    >>> t.finished("wf"); t.due({"wf": 199}, {}), t.due({"wf": 200}, {})  # counted from 100
    ([], ['wf'])
    """

    every_outcomes: int = 0
    after_drift: bool = False
    _outcomes_at: dict[str, int] = field(default_factory=dict)  # totals when the last job started
    _drifts_at: dict[str, int] = field(default_factory=dict)
    _running: set[str] = field(default_factory=set)
    _seen: dict[str, tuple[int, int]] = field(default_factory=dict)  # the totals of the last `due`

    @property
    def enabled(self) -> bool:
        """Whether anything can make a workflow due."""
        return self.every_outcomes > 0 or self.after_drift

    def due(self, outcomes: Mapping[str, int], drifts: Mapping[str, int]) -> list[str]:
        """The workflows due a job now, given each one's total outcomes learned and drifts seen.

        The first totals a workflow is seen with are its baseline (a restarted service
        does not start a job for what it learned before)."""
        out = []
        for wf in sorted(set(outcomes) | set(drifts)):
            n, d = outcomes.get(wf, 0), drifts.get(wf, 0)
            self._outcomes_at.setdefault(wf, n)
            self._drifts_at.setdefault(wf, d)
            self._seen[wf] = (n, d)
            if not self.enabled or wf in self._running:
                continue
            by_count = self.every_outcomes > 0 and n - self._outcomes_at[wf] >= self.every_outcomes
            by_drift = self.after_drift and d > self._drifts_at[wf]
            if by_count or by_drift:
                out.append(wf)
        return out

    def started(self, workflow: str) -> None:
        """A job of `workflow` started: count again from the totals it was due at."""
        n, d = self._seen.get(workflow, (0, 0))
        self._outcomes_at[workflow], self._drifts_at[workflow] = n, d
        self._running.add(workflow)

    def finished(self, workflow: str) -> None:
        """The job of `workflow` ended (well or not): another may start when due."""
        self._running.discard(workflow)

    @property
    def running(self) -> frozenset[str]:
        """Workflows with a job under way."""
        return frozenset(self._running)
