"""Outcome events: validation, idempotent recording with rewards, paging and stats.

Functions here take a connection already in a transaction; :class:`Ledger`
owns the transactions.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from flywheel.ledger.runs import (
    count_runs,
    dialect_insert,
    in_ids,
    run_facts,
    stored_outcome,
)
from flywheel.ledger.tables import decisions, outcomes
from flywheel.ledger.records import (
    OutcomeEvent,
    OutcomeLimits,
    OutcomeReport,
    Rejection,
    StoredOutcome,
    WorkflowStats,
)

RewardOf = Callable[[str, OutcomeEvent, float, float], float]
"""(workflow, event, agent cost, agent latency_s) -> reward."""

def _number(value: Any) -> bool:
    """Whether ``value`` is a real number (a bool is not one, nor NaN or an infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def problem(event: OutcomeEvent, limits: OutcomeLimits = OutcomeLimits()) -> str | None:
    """Why ``event`` is malformed, or None when its fields are acceptable.

    >>> problem(OutcomeEvent(event_id="e", run_id="r"))
    'needs success or quality'
    >>> problem(OutcomeEvent(event_id="e", run_id="r", quality=1.5))
    'quality must be within [0, 1], got 1.5'
    >>> problem(OutcomeEvent(event_id="e", run_id="r", success=True, cost=1e308))
    'cost must be a finite number within [0, 1000.0], got 1e+308'
    >>> problem(OutcomeEvent(event_id="e", run_id="r", success=False)) is None
    True
    """
    if event.success is None and event.quality is None:
        return "needs success or quality"
    if event.success is not None and not isinstance(event.success, bool):
        return f"success must be true or false, got {event.success!r}"
    if event.quality is not None and not (_number(event.quality) and 0.0 <= event.quality <= 1.0):
        return f"quality must be within [0, 1], got {event.quality!r}"
    bounds = {"cost": limits.max_cost_usd, "latency_s": limits.max_latency_s, "occurred_at": math.inf}
    for name, most in bounds.items():
        value = getattr(event, name)
        if value is not None and not (_number(value) and 0.0 <= value <= most):
            return f"{name} must be a finite number within [0, {most}], got {value!r}"
    if not isinstance(event.human_override, bool):
        return f"human_override must be true or false, got {event.human_override!r}"
    return None


def record_outcomes(
    connection: Connection,
    events: Sequence[OutcomeEvent],
    reward_of: RewardOf,
    limits: OutcomeLimits = OutcomeLimits(),
) -> OutcomeReport:
    """Classify ``events`` as new, duplicate or rejected, and insert the new ones.

    One batch of :func:`record_outcome_batches`; the rules are there.
    """
    return record_outcome_batches(connection, [events], reward_of, limits)[0]


def record_outcome_batches(
    connection: Connection,
    batches: Sequence[Sequence[OutcomeEvent]],
    reward_of: RewardOf,
    limits: OutcomeLimits = OutcomeLimits(),
) -> list[OutcomeReport]:
    """Classify the events of several batches, insert the new ones: one report per batch.

    The batches are taken in order as one sequence of events (so concurrent
    requests can share a transaction, see :class:`~flywheel.ledger.batch_writer.BatchWriter`).
    In order, an event is rejected when malformed (:func:`problem`, within
    ``limits``) or when its reward is not a finite number; a
    duplicate when an earlier accepted event (of any batch) or a stored outcome
    has its event_id; rejected when its run is unknown; else new. Two queries
    for all the batches (stored event ids, the runs' facts), one
    ``INSERT ... ON CONFLICT (event_id) DO NOTHING`` executed with every new
    row, so a row that a concurrent transaction stored first counts as a
    duplicate too, and one query reading back the new rows' positions
    (see :func:`_insert_new`).

    On PostgreSQL the transaction first locks ``outcomes`` against other
    writers (``SHARE ROW EXCLUSIVE``; readers are not blocked). Positions then
    come from the sequence in commit order, so a learner reading
    ``position > p`` can never later see a smaller position appear. SQLite
    writers are serialized by ``BEGIN IMMEDIATE`` already.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("LOCK TABLE outcomes IN SHARE ROW EXCLUSIVE MODE")
    every = [event for events in batches for event in events]
    stored = _stored_event_ids(connection, [e.event_id for e in every])
    facts = run_facts(connection, [e.run_id for e in every])
    received_at = time.time()
    seen: set[str] = set()
    reports = [OutcomeReport() for _ in batches]
    rows: list[dict[str, Any]] = []
    owners: list[OutcomeReport] = []
    for report, events in zip(reports, batches):
        for event in events:
            reason = problem(event, limits)
            if reason is not None:
                report.rejected.append(Rejection(event.event_id, reason))
            elif event.event_id in seen or event.event_id in stored:
                report.duplicate += 1
            elif event.run_id not in facts:
                report.rejected.append(Rejection(event.event_id, f"unknown run_id {event.run_id!r}"))
            else:
                workflow, agent_cost, agent_latency = facts[event.run_id]
                row = _outcome_row(event, workflow, agent_cost, agent_latency, reward_of, received_at)
                if not math.isfinite(row["reward"]):
                    report.rejected.append(Rejection(event.event_id, f"reward is not finite: {row['reward']!r}"))
                    continue
                seen.add(event.event_id)
                rows.append(row)
                owners.append(report)
    inserted = _insert_new(connection, rows)
    for row, report in zip(rows, owners):
        position = inserted.get(row["event_id"])
        if position is None:
            report.duplicate += 1
        else:
            report.new += 1
            report.new_positions.append(position)
    return reports


def outcomes_after(
    connection: Connection, position: int, workflow: str | None, limit: int
) -> list[StoredOutcome]:
    """Stored outcomes with a position above ``position``, oldest first, at most ``limit``."""
    query = select(outcomes).where(outcomes.c.position > position)
    if workflow is not None:
        query = query.where(outcomes.c.workflow == workflow)
    rows = connection.execute(query.order_by(outcomes.c.position).limit(limit)).all()
    return [stored_outcome(row) for row in rows]


def last_position(connection: Connection) -> int:
    """The highest outcome position stored, 0 when there is none."""
    return int(connection.execute(select(func.max(outcomes.c.position))).scalar() or 0)


def workflow_stats(connection: Connection, workflow: str) -> WorkflowStats:
    """Counts, mean reward and route shares of ``workflow``: three aggregate queries."""
    runs_count, waiting = count_runs(connection, workflow)
    outcome_count, mean_reward = connection.execute(
        select(func.count(), func.avg(outcomes.c.reward)).where(outcomes.c.workflow == workflow)
    ).one()
    arm_counts = connection.execute(
        select(decisions.c.arm, func.count())
        .where(decisions.c.workflow == workflow)
        .group_by(decisions.c.arm)
    ).all()
    total = sum(count for _, count in arm_counts)
    return WorkflowStats(
        workflow=workflow,
        runs=runs_count,
        waiting=waiting,
        outcomes=int(outcome_count),
        mean_reward=float(mean_reward) if mean_reward is not None else None,
        route_shares={arm: count / total for arm, count in sorted(arm_counts)},
    )


def _stored_event_ids(connection: Connection, event_ids: Sequence[str]) -> set[str]:
    if not event_ids:
        return set()
    unique = list(dict.fromkeys(event_ids))
    query = select(outcomes.c.event_id).where(in_ids(connection, outcomes.c.event_id, unique))
    return set(connection.execute(query).scalars())


_COLUMNS = {
    "event_id": "text", "run_id": "text", "workflow": "text", "success": "boolean",
    "quality": "float8", "cost": "float8", "latency_s": "float8", "human_override": "boolean",
    "source": "text", "reward": "float8", "occurred_at": "float8", "received_at": "float8",
}
"""The columns :func:`_insert_new` writes, in order, with their PostgreSQL array element types."""

_VALUES = operator.itemgetter(*_COLUMNS)
"""An outcome row's values in the order of :data:`_COLUMNS`."""

_NAMES = ", ".join(_COLUMNS)
_SQLITE_INSERT = (
    f"INSERT INTO outcomes ({_NAMES}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT (event_id) DO NOTHING"
)
_POSTGRES_INSERT = (
    f"INSERT INTO outcomes ({_NAMES}) SELECT * FROM unnest("
    + ", ".join(f"%s::{kind}[]" for kind in _COLUMNS.values())
    + ") ON CONFLICT (event_id) DO NOTHING"
)


def _insert_new(connection: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert ``rows`` unless their event_id is stored; event_id -> position of those inserted.

    Straight to the driver, without SQLAlchemy's per-row parameter processing
    or a long multi-VALUES statement to render: on SQLite one ``executemany``
    of a plain ``INSERT ... ON CONFLICT (event_id) DO NOTHING`` (sqlite3 loops
    in C); on PostgreSQL one ``INSERT ... SELECT FROM unnest(...)`` taking
    each column as an array (one short statement, whatever the row count).
    The positions are then read back as those above the highest one before
    the insert: the caller holds the writers' lock (PostgreSQL table lock,
    SQLite ``BEGIN IMMEDIATE``), so every such row is this transaction's.
    """
    if not rows:
        return {}
    before = last_position(connection)
    values = [_VALUES(row) for row in rows]
    if connection.dialect.name == "postgresql":
        columns = [list(column) for column in zip(*values)]
        for k, kind in enumerate(_COLUMNS.values()):
            if kind == "float8":  # one element type per array (an int among floats would not do)
                columns[k] = [None if v is None else float(v) for v in columns[k]]
        connection.exec_driver_sql(_POSTGRES_INSERT, tuple(columns))
    else:
        connection.exec_driver_sql(_SQLITE_INSERT, values)
    ours = {row["event_id"] for row in rows}
    stored = connection.execute(
        select(outcomes.c.event_id, outcomes.c.position).where(outcomes.c.position > before)
    )
    return {event_id: position for event_id, position in stored if event_id in ours}


def _outcome_row(
    event: OutcomeEvent,
    workflow: str,
    agent_cost: float,
    agent_latency: float,
    reward_of: RewardOf,
    received_at: float,
) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "run_id": event.run_id,
        "workflow": workflow,
        "success": event.success,
        "quality": event.quality,
        "cost": event.cost if event.cost is not None else agent_cost,
        "latency_s": event.latency_s if event.latency_s is not None else agent_latency,
        "human_override": event.human_override,
        "source": event.source,
        "reward": float(reward_of(workflow, event, agent_cost, agent_latency)),
        "occurred_at": event.occurred_at,
        "received_at": received_at,
    }
