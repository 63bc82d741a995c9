"""Outcomes joined with their own decisions, in ledger order: the learners' input.

The join uses what was logged when the run was decided (features, propensity,
the agent's confidence), so an outcome arriving late is learned exactly as if it
had arrived at once.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, select

from flywheel.ledger import outcomes as outcome_log
from flywheel.ledger.tables import decisions, learning_events, steps
from flywheel.ledger.records import LearningEvent, OutcomeJoin


def joined_outcomes_after(
    connection: Connection, position: int, workflow: str | None, limit: int
) -> list[OutcomeJoin]:
    found = outcome_log.outcomes_after(connection, position, workflow, limit)
    run_ids = sorted({o.run_id for o in found})
    if not run_ids:
        return []
    decided: dict[str, tuple] = {}
    for row in connection.execute(
        select(decisions.c.run_id, decisions.c.features, decisions.c.arm, decisions.c.propensity,
               decisions.c.config_version, decisions.c.id)
        .where(decisions.c.run_id.in_(run_ids))
        .order_by(decisions.c.id)
    ):
        decided.setdefault(row.run_id, tuple(row)[1:])
    agent: dict[str, dict] = {}
    gate: dict[str, tuple[str, dict]] = {}
    for row in connection.execute(
        select(steps.c.run_id, steps.c.kind, steps.c.step_id, steps.c.output)
        .where(steps.c.run_id.in_(run_ids), steps.c.kind.in_(("agent", "gate")))
        .order_by(steps.c.run_id, steps.c.seq)
    ):
        if row.kind == "agent":
            agent.setdefault(row.run_id, row.output or {})
        else:
            gate.setdefault(row.run_id, (row.step_id, row.output or {}))
    joined = []
    for o in found:
        d = decided.get(o.run_id)
        a = agent.get(o.run_id, {})
        g = gate.get(o.run_id)
        joined.append(
            OutcomeJoin(
                outcome=o,
                features=d[0] if d else None,
                arm=d[1] if d else None,
                propensity=d[2] if d else None,
                config_version=d[3] if d else None,
                confidence=a.get("confidence"),
                agent_cost=float(a.get("cost") or 0.0),
                agent_latency_s=float(a.get("latency_s") or 0.0),
                gate_step=g[0] if g else None,
                gate_passed=g[1].get("passed") if g else None,
                decision_id=d[4] if d else None,
            )
        )
    return joined


def record_events(connection: Connection, events: list[LearningEvent]) -> None:
    if events:
        connection.execute(
            learning_events.insert(),
            [
                {"at": e.at or time.time(), "workflow": e.workflow, "kind": e.kind, "arm": e.arm,
                 "position": e.position, "detail": e.detail}
                for e in events
            ],
        )


def events_of(connection: Connection, workflow: str, after_id: int = 0) -> list[LearningEvent]:
    rows = connection.execute(
        select(learning_events)
        .where(learning_events.c.workflow == workflow, learning_events.c.id > after_id)
        .order_by(learning_events.c.id)
    )
    return [
        LearningEvent(workflow=r.workflow, kind=r.kind, arm=r.arm, position=r.position,
                      detail=r.detail, at=r.at, id=r.id)
        for r in rows
    ]
