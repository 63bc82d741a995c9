"""The version outbox: learned-config versions wait here until the registry has them.

A learner's new version is first a row here (durable, in the same database as
the outcomes it learned from); a publisher moves rows to MLflow in id order and
marks each with its registry version number. While MLflow is unreachable the
rows simply wait, so nothing learned is lost and versions arrive in order.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, select, update

from flywheel.ledger.tables import version_outbox
from flywheel.ledger.records import OutboxVersion


def enqueue(
    connection: Connection,
    *,
    workflow: str,
    proposed_by: str,
    position: int,
    config: dict[str, Any],
    evidence: dict[str, float],
    learner_state: bytes | None,
    policy_state: bytes | None,
) -> int:
    result = connection.execute(
        version_outbox.insert().returning(version_outbox.c.id),
        [
            {
                "created_at": time.time(),
                "workflow": workflow,
                "proposed_by": proposed_by,
                "position": position,
                "config": config,
                "evidence": evidence,
                "learner_state": learner_state,
                "policy_state": policy_state,
                "attempts": 0,
            }
        ],
    )
    return int(result.scalar_one())


def unpublished(connection: Connection, limit: int) -> list[OutboxVersion]:
    rows = connection.execute(
        select(version_outbox)
        .where(version_outbox.c.published_number.is_(None))
        .order_by(version_outbox.c.id)
        .limit(limit)
    )
    return [_record(r._mapping) for r in rows]


def mark_published(connection: Connection, outbox_id: int, number: int) -> None:
    """Record the registry's number; the states now live in the registry, so drop them here."""
    connection.execute(
        update(version_outbox)
        .where(version_outbox.c.id == outbox_id)
        .values(published_number=number, published_at=time.time(), learner_state=None, policy_state=None)
    )


def mark_failed(connection: Connection, outbox_id: int, error: str) -> None:
    connection.execute(
        update(version_outbox)
        .where(version_outbox.c.id == outbox_id)
        .values(attempts=version_outbox.c.attempts + 1, last_error=error[:2000])
    )


def _record(m: Any) -> OutboxVersion:
    return OutboxVersion(
        id=m["id"],
        created_at=m["created_at"],
        workflow=m["workflow"],
        proposed_by=m["proposed_by"],
        position=m["position"],
        config=m["config"],
        evidence=m["evidence"],
        learner_state=m["learner_state"],
        policy_state=m["policy_state"],
        attempts=m["attempts"],
        last_error=m["last_error"],
        published_number=m["published_number"],
    )
