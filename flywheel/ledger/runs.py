"""Runs, their steps and decisions: writing, compare-and-set resuming and reading.

Functions here take a connection already in a transaction; :class:`Ledger`
owns the transactions. Rows become records on the way out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import ARRAY, Column, ColumnElement, Connection, Row, String, Table, any_, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from flywheel.ledger.tables import decisions, outcomes, runs, steps
from flywheel.ledger.records import DecisionRecord, RunRecord, StepRecord, StoredOutcome

CHUNK = 500
"""Most ids in one ``IN (...)`` list."""

_T = TypeVar("_T")


def dialect_insert(connection: Connection, table: Table) -> Any:
    """The dialect's own ``INSERT`` (with ``on_conflict_do_*``) for ``table``."""
    name = connection.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"database_url: the ledger supports SQLite and PostgreSQL, not {name!r}")


def chunks(items: Sequence[_T], size: int = CHUNK) -> Iterator[Sequence[_T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def in_ids(connection: Connection, column: Column[Any], ids: Sequence[str]) -> ColumnElement[bool]:
    """``column IN ids`` with the ids as one bound value: a PostgreSQL array, a SQLite JSON array.

    One statement whatever the number of ids, so SQLAlchemy compiles it once
    (an ``IN`` list is re-rendered for every length) and no chunking is needed.
    """
    if connection.dialect.name == "postgresql":
        return column == any_(bindparam("ids", list(ids), type_=ARRAY(String)))
    each = func.json_each(bindparam("ids", json.dumps(list(ids)), type_=String)).table_valued("value")
    return column.in_(select(each.c.value))


def write_runs(connection: Connection, records: Iterable[RunRecord]) -> None:
    """Upsert the runs, insert their new steps and their decisions: one statement per table.

    A run listed twice keeps its last state (the upsert could not touch a row
    twice in one PostgreSQL statement).
    """
    latest: dict[str, RunRecord] = {}
    step_rows: dict[tuple[str, int], dict[str, Any]] = {}
    decision_rows: list[dict[str, Any]] = []
    for record in records:
        latest.pop(record.run_id, None)
        latest[record.run_id] = record
        for step in record.steps:
            step_rows.setdefault((step.run_id, step.seq), _step_row(step))
        if record.decision is not None:
            decision_rows.append(_decision_row(record.decision))
    if latest:
        stmt = dialect_insert(connection, runs)
        stmt = stmt.on_conflict_do_update(
            index_elements=[runs.c.run_id],
            set_={
                "status": stmt.excluded.status,
                "answer": stmt.excluded.answer,
                "updated_at": stmt.excluded.updated_at,
                "waiting_step": stmt.excluded.waiting_step,
            },
        )
        connection.execute(stmt, [_run_row(r) for r in latest.values()])
    insert_steps(connection, list(step_rows.values()))
    if decision_rows:
        connection.execute(decisions.insert(), decision_rows)


def insert_new_runs(connection: Connection, records: Sequence[RunRecord]) -> None:
    """Insert runs that are not stored yet, with their steps and decisions.

    Plain INSERTs (no ON CONFLICT): SQLAlchemy caches their compiled form, which
    the dialects' upsert constructs do not allow; this is the request path's write.
    A run id already stored fails the whole transaction (IntegrityError).
    """
    connection.execute(runs.insert(), [_run_row(r) for r in records])
    step_rows = [_step_row(step) for r in records for step in r.steps]
    if step_rows:
        connection.execute(steps.insert(), step_rows)
    decision_rows = [_decision_row(r.decision) for r in records if r.decision is not None]
    if decision_rows:
        connection.execute(decisions.insert(), decision_rows)


def insert_steps(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert step rows, skipping any whose (run_id, seq) is already stored."""
    if rows:
        stmt = dialect_insert(connection, steps).on_conflict_do_nothing(
            index_elements=[steps.c.run_id, steps.c.seq]
        )
        connection.execute(stmt, rows)


def resume_run(
    connection: Connection, run_id: str, expected_status: str, update_: RunRecord
) -> bool:
    """Compare-and-set the run's state from ``expected_status``; on success add the new steps.

    The ``UPDATE ... WHERE status = expected`` is atomic on both databases: on
    PostgreSQL a concurrent updater blocks on the row and then re-checks the
    condition against the committed row, finding it changed; on SQLite writers
    are serialized. So of several racing resumes exactly one sees a row count of 1.
    """
    result = connection.execute(
        update(runs)
        .where(runs.c.run_id == run_id, runs.c.status == expected_status)
        .values(
            status=update_.status,
            answer=update_.answer,
            updated_at=update_.updated_at,
            waiting_step=update_.waiting_step,
        )
    )
    if result.rowcount != 1:
        return False
    insert_steps(connection, [_step_row(step) for step in update_.steps])
    if update_.decision is not None:
        connection.execute(decisions.insert(), [_decision_row(update_.decision)])
    return True


def get_run(
    connection: Connection, run_id: str
) -> tuple[RunRecord, list[StoredOutcome]] | None:
    """The run with its steps (by seq), its first decision and its outcomes (by position)."""
    row = connection.execute(select(runs).where(runs.c.run_id == run_id)).one_or_none()
    if row is None:
        return None
    step_rows = connection.execute(
        select(steps).where(steps.c.run_id == run_id).order_by(steps.c.seq)
    ).all()
    decision_row = connection.execute(
        select(decisions).where(decisions.c.run_id == run_id).order_by(decisions.c.id).limit(1)
    ).one_or_none()
    outcome_rows = connection.execute(
        select(outcomes).where(outcomes.c.run_id == run_id).order_by(outcomes.c.position)
    ).all()
    record = run_record(row)
    record.steps = [step_record(s) for s in step_rows]
    record.decision = decision_record(decision_row) if decision_row is not None else None
    return record, [stored_outcome(o) for o in outcome_rows]


def run_facts(
    connection: Connection, run_ids: Sequence[str]
) -> dict[str, tuple[str, float, float]]:
    """For the ids that exist: run_id -> (workflow, agent cost, agent latency_s).

    Cost and latency are summed over the run's steps of kind ``agent`` (a run
    normally has one), from their outputs' ``cost`` and ``latency_s``, read in
    SQL as text; a missing value, or one that does not read as a finite
    number, counts as 0.0.
    """
    facts: dict[str, tuple[str, float, float]] = {}
    if not run_ids:
        return facts
    rows = connection.execute(  # only the two figures of each output, not the whole JSON
        select(
            runs.c.run_id,
            runs.c.workflow,
            steps.c.output["cost"].as_string(),
            steps.c.output["latency_s"].as_string(),
        )
        .select_from(
            runs.outerjoin(steps, (steps.c.run_id == runs.c.run_id) & (steps.c.kind == "agent"))
        )
        .where(in_ids(connection, runs.c.run_id, list(dict.fromkeys(run_ids))))
    ).all()
    for run_id, workflow, step_cost, step_latency in rows:
        _, cost, latency = facts.get(run_id, (workflow, 0.0, 0.0))
        facts[run_id] = (workflow, cost + _number(step_cost), latency + _number(step_latency))
    return facts


def count_runs(connection: Connection, workflow: str) -> tuple[int, int]:
    """(runs, waiting runs) of ``workflow``, in one aggregate query."""
    runs_count, waiting = connection.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((runs.c.status == "waiting", 1), else_=0)), 0),
        ).where(runs.c.workflow == workflow)
    ).one()
    return int(runs_count), int(waiting)


def _number(value: Any) -> float:
    """A figure read from JSON as text (or a number, as SQLite gives it): 0.0 unless it is a finite number."""
    if isinstance(value, bool) or value is None:
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _run_row(record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "workflow": record.workflow,
        "status": record.status,
        "input": record.input,
        "answer": record.answer,
        "metadata": dict(record.metadata),
        "config_version": record.config_version,
        "waiting_step": record.waiting_step,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "trace_id": record.trace_id,
        **_routing_facts(record),
    }


def _routing_facts(record: RunRecord) -> dict[str, Any]:
    """The arm, whether the gate sent the run to a human, and the gate's threshold, as columns."""
    gate = next((s.output for s in record.steps if s.kind == "gate"), None)
    return {
        "arm": record.decision.arm if record.decision is not None else None,
        "to_human": None if gate is None else not bool(gate.get("passed")),
        "gate_threshold": None if gate is None else _number(gate.get("threshold")),
    }


def _step_row(step: StepRecord) -> dict[str, Any]:
    return {
        "run_id": step.run_id,
        "seq": step.seq,
        "step_id": step.step_id,
        "kind": step.kind,
        "status": step.status,
        "output": step.output,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
    }


def _decision_row(decision: DecisionRecord) -> dict[str, Any]:
    return {
        "run_id": decision.run_id,
        "step_id": decision.step_id,
        "workflow": decision.workflow,
        "arm": decision.arm,
        "propensity": decision.propensity,
        "scores": decision.scores,
        "features": decision.features,
        "config_version": decision.config_version,
        "created_at": decision.created_at,
    }


def run_record(row: Row[Any]) -> RunRecord:
    """A ``runs`` row as a :class:`RunRecord` (without steps or decision)."""
    m = row._mapping
    return RunRecord(
        run_id=m["run_id"],
        workflow=m["workflow"],
        status=m["status"],
        input=m["input"],
        answer=m["answer"],
        config_version=m["config_version"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        metadata=dict(m["metadata"] or {}),
        waiting_step=m["waiting_step"],
        trace_id=m["trace_id"],
    )


def step_record(row: Row[Any]) -> StepRecord:
    """A ``steps`` row as a :class:`StepRecord`."""
    m = row._mapping
    return StepRecord(
        run_id=m["run_id"],
        seq=m["seq"],
        step_id=m["step_id"],
        kind=m["kind"],
        status=m["status"],
        output=m["output"],
        started_at=m["started_at"],
        ended_at=m["ended_at"],
    )


def decision_record(row: Row[Any]) -> DecisionRecord:
    """A ``decisions`` row as a :class:`DecisionRecord`."""
    m = row._mapping
    return DecisionRecord(
        run_id=m["run_id"],
        step_id=m["step_id"],
        workflow=m["workflow"],
        arm=m["arm"],
        propensity=m["propensity"],
        scores=m["scores"],
        features=m["features"],
        config_version=m["config_version"],
        created_at=m["created_at"],
    )


def stored_outcome(row: Row[Any]) -> StoredOutcome:
    """An ``outcomes`` row as a :class:`StoredOutcome`."""
    m = row._mapping
    return StoredOutcome(
        position=m["position"],
        event_id=m["event_id"],
        run_id=m["run_id"],
        workflow=m["workflow"],
        success=m["success"],
        quality=m["quality"],
        cost=m["cost"],
        latency_s=m["latency_s"],
        human_override=m["human_override"],
        source=m["source"],
        reward=m["reward"],
        received_at=m["received_at"],
    )
