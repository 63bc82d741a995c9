"""The dashboard's queries: a workflow's loop over time, in time buckets, and recent runs.

Every series is a GROUP BY over a time bucket on an indexed (workflow, time) range, so a
page costs a few aggregate queries whatever the ledger's size; no run is loaded to count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Integer, case, cast, func, or_, select

from flywheel.ledger.engine import read_transaction
from flywheel.ledger.observe import error_flag
from flywheel.ledger.tables import audit, learning_events, outcomes, runs


@dataclass(slots=True)
class Bucket:
    """One time bucket of a workflow: what ran, how it was routed and what it earned."""

    start: float
    runs: int = 0
    arms: dict[str, int] = field(default_factory=dict)
    to_human: int = 0
    gated: int = 0
    threshold: float | None = None
    outcomes: int = 0
    mean_reward: float | None = None
    unattended_errors: int = 0
    unattended_judged: int = 0


@dataclass(slots=True)
class Mark:
    """Something to mark on the time axis: a drift event or a version change."""

    at: float
    kind: str  # "drift" or the audit action (auto-promote, approve, rollback, pin...)
    label: str
    actor: str = ""


@dataclass(slots=True)
class Series:
    workflow: str
    since: float
    bucket_s: float
    buckets: list[Bucket]
    marks: list[Mark]


@dataclass(slots=True)
class RunRow:
    run_id: str
    status: str
    arm: str | None
    config_version: str
    to_human: bool | None
    created_at: float
    trace_id: str | None


def time_bucket(connection: Connection, column: Any, since: float, bucket_s: float) -> Any:
    """The bucket index of a time column (non-negative from `since`): floor, on either database."""
    offset = (column - since) / bucket_s
    if connection.dialect.name == "postgresql":
        return cast(func.floor(offset), Integer)
    return cast(offset, Integer)  # SQLite's CAST truncates: floor for non-negative values


def series(engine: Engine, workflow: str, *, since: float, until: float, buckets: int) -> Series:
    """The workflow's runs, route shares, gate, human share, rewards and unattended errors per
    bucket of (until - since) / buckets seconds, with the drifts and version changes between."""
    bucket_s = max(1e-3, (until - since) / buckets)
    out = [Bucket(start=since + i * bucket_s) for i in range(buckets)]
    with read_transaction(engine) as c:
        b = time_bucket(c, runs.c.created_at, since, bucket_s).label("b")
        for i, arm, n, human, gated, threshold in c.execute(
            select(b, runs.c.arm, func.count(), func.sum(case((runs.c.to_human.is_(True), 1), else_=0)),
                   func.count(runs.c.to_human), func.avg(runs.c.gate_threshold))
            .where(runs.c.workflow == workflow, runs.c.created_at >= since, runs.c.created_at < until)
            .group_by(b, runs.c.arm)
        ):
            if not 0 <= i < buckets:
                continue
            k = out[i]
            k.runs += int(n)
            k.arms[arm or "none"] = k.arms.get(arm or "none", 0) + int(n)
            k.to_human += int(human or 0)
            k.gated += int(gated)
            if threshold is not None:
                k.threshold = float(threshold) if k.threshold is None else max(k.threshold, float(threshold))
        ob = time_bucket(c, outcomes.c.received_at, since, bucket_s).label("b")
        unattended = runs.c.to_human.is_(False)
        for i, n, reward, errors, judged in c.execute(
            select(ob, func.count(), func.avg(outcomes.c.reward),
                   func.sum(case((unattended, error_flag()), else_=0)),
                   func.count(case((unattended, error_flag()), else_=None)))
            .join(runs, runs.c.run_id == outcomes.c.run_id)
            .where(outcomes.c.workflow == workflow, outcomes.c.received_at >= since, outcomes.c.received_at < until)
            .group_by(ob)
        ):
            if 0 <= i < buckets:
                k = out[i]
                k.outcomes, k.mean_reward = int(n), float(reward)
                k.unattended_errors, k.unattended_judged = int(errors or 0), int(judged)
        marks = [Mark(at=float(at), kind="drift", label=f"drift on {arm or 'reward'}") for at, arm in c.execute(
            select(learning_events.c.at, learning_events.c.arm)
            .where(learning_events.c.workflow == workflow, learning_events.c.kind == "drift",
                   learning_events.c.at >= since, learning_events.c.at < until)
            .order_by(learning_events.c.at).limit(500))]
        marks += [Mark(at=float(at), kind=action, label=subject, actor=actor) for at, action, subject, actor in c.execute(
            select(audit.c.at, audit.c.action, audit.c.subject, audit.c.actor)
            .where(or_(audit.c.subject == workflow, audit.c.subject.like(f"{workflow}@%")),
                   audit.c.at >= since, audit.c.at < until)
            .order_by(audit.c.id).limit(500))]
    return Series(workflow=workflow, since=since, bucket_s=bucket_s, buckets=out,
                  marks=sorted(marks, key=lambda m: m.at))


def recent_runs(engine: Engine, workflow: str, *, status: str | None = None, arm: str | None = None,
                version: str | None = None, limit: int = 50) -> list[RunRow]:
    """The newest runs of a workflow, optionally of one status, arm and config version."""
    query = select(runs.c.run_id, runs.c.status, runs.c.arm, runs.c.config_version, runs.c.to_human,
                   runs.c.created_at, runs.c.trace_id).where(runs.c.workflow == workflow)
    if status:
        query = query.where(runs.c.status == status)
    if arm:
        query = query.where(runs.c.arm == arm)
    if version:
        query = query.where(runs.c.config_version == version)
    with read_transaction(engine) as c:
        rows = c.execute(query.order_by(runs.c.created_at.desc()).limit(limit)).all()
    return [RunRow(*row) for row in rows]
