"""Read-side queries behind the service's metrics: what new outcomes say (lag, reward by
arm), and a snapshot of the learning loop (share sent to humans, unattended error rate,
drift events, version changes, outbox depth). Aggregates by SQL; no row is loaded to count."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, case, func, select

from flywheel.ledger.engine import read_transaction
from flywheel.ledger.runs import chunks
from flywheel.ledger.tables import audit, learning_events, outcomes, runs, version_outbox

RECENT_S = 3600.0
"""Window of the rates in a snapshot: runs and outcomes of the last hour."""


@dataclass(slots=True)
class OutcomeFact:
    """An accepted outcome, as metrics see it."""

    workflow: str
    arm: str | None
    reward: float
    lag_s: float  # from the run's start to the outcome's arrival


@dataclass(slots=True)
class WorkflowLoop:
    """One workflow's loop, recently: rates over the window, counts over all time."""

    human_share: float | None = None
    unattended_error_rate: float | None = None
    drift_events: int = 0
    version_changes: dict[str, int] = field(default_factory=dict)  # audit action -> count
    last_change_at: float | None = None


@dataclass(slots=True)
class LoopSnapshot:
    at: float
    outbox_depth: int
    workflows: dict[str, WorkflowLoop]


def error_flag():
    """1 for an outcome that says the answer was wrong, 0 when right, NULL when it does not say."""
    return case(
        (outcomes.c.success.is_(False), 1),
        (outcomes.c.success.is_(True), 0),
        (outcomes.c.quality < 0.5, 1),
        (outcomes.c.quality >= 0.5, 0),
        else_=None,
    )


def outcome_facts(engine: Engine, positions: list[int]) -> list[OutcomeFact]:
    """Workflow, arm, reward and lag of the outcomes at `positions`."""
    out: list[OutcomeFact] = []
    with read_transaction(engine) as connection:
        for chunk in chunks(positions):
            rows = connection.execute(
                select(outcomes.c.workflow, runs.c.arm, outcomes.c.reward,
                       outcomes.c.received_at - runs.c.created_at)
                .join(runs, runs.c.run_id == outcomes.c.run_id)
                .where(outcomes.c.position.in_(chunk))
            ).all()
            out += [OutcomeFact(wf, arm, float(r), float(lag)) for wf, arm, r, lag in rows]
    return out


def loop_snapshot(engine: Engine, workflows: list[str], *, window_s: float = RECENT_S,
                  now: float | None = None) -> LoopSnapshot:
    """The loop's state now: five aggregate queries in one read transaction."""
    now = time.time() if now is None else now
    since = now - window_s
    found = {wf: WorkflowLoop() for wf in workflows}
    with read_transaction(engine) as connection:
        for wf, share in connection.execute(
            select(runs.c.workflow, func.avg(case((runs.c.to_human.is_(True), 1.0), else_=0.0)))
            .where(runs.c.workflow.in_(workflows), runs.c.created_at >= since, runs.c.to_human.is_not(None))
            .group_by(runs.c.workflow)
        ):
            found[wf].human_share = float(share)
        for wf, rate in connection.execute(
            select(outcomes.c.workflow, func.avg(error_flag() * 1.0))
            .join(runs, runs.c.run_id == outcomes.c.run_id)
            .where(outcomes.c.workflow.in_(workflows), outcomes.c.received_at >= since,
                   runs.c.to_human.is_(False))
            .group_by(outcomes.c.workflow)
        ):
            found[wf].unattended_error_rate = None if rate is None else float(rate)
        for wf, n in connection.execute(
            select(learning_events.c.workflow, func.count())
            .where(learning_events.c.workflow.in_(workflows), learning_events.c.kind == "drift")
            .group_by(learning_events.c.workflow)
        ):
            found[wf].drift_events = int(n)
        for subject, action, n, last in connection.execute(
            select(audit.c.subject, audit.c.action, func.count(), func.max(audit.c.at))
            .group_by(audit.c.subject, audit.c.action)
        ):
            wf = subject.split("@")[0]
            if wf in found:
                loop = found[wf]
                loop.version_changes[action] = loop.version_changes.get(action, 0) + int(n)
                loop.last_change_at = max(loop.last_change_at or 0.0, float(last))
        depth = connection.execute(
            select(func.count()).select_from(version_outbox).where(version_outbox.c.published_number.is_(None))
        ).scalar_one()
    return LoopSnapshot(at=now, outbox_depth=int(depth), workflows=found)
