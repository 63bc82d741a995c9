"""The version outbox: learned-config versions wait here until the registry has them.

A learner's new version is first a row here (durable, in the same database as
the outcomes it learned from); a publisher moves rows to MLflow in id order and
marks each with its registry version number. While MLflow is unreachable the
rows simply wait, so nothing learned is lost and versions arrive in order.

Several publishers may run at once (learner replicas, the CLI). Each first
*claims* a row, in a short write transaction (``SELECT ... FOR UPDATE SKIP
LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite): ``claimed_by`` and
``claimed_at`` make the claim a lease, so the row of a publisher that died
becomes claimable again after the lease. Only the oldest waiting row of a
workflow is claimable, so a workflow's versions are registered in order. The
row is marked published inside the governed transaction that decides it
(:class:`GovernedPublication`), which first checks that it still waits: one
row yields one decision and one audit entry even when a lease ran out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, exists, or_, select, update

from flywheel.ledger import audit as audit_trail
from flywheel.ledger.tables import version_outbox
from flywheel.ledger.records import AuditEntry, OutboxVersion


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


def claim_next(connection: Connection, claimant: str, now: float, lease_s: float) -> OutboxVersion | None:
    """Claim for ``claimant`` the oldest waiting row that heads its workflow's queue and is free.

    Free: not claimed, or claimed longer than ``lease_s`` ago. Rows another transaction is claiming right now are
    skipped (PostgreSQL); on SQLite the caller's ``BEGIN IMMEDIATE`` already
    serializes claims.
    """
    row = version_outbox
    earlier = version_outbox.alias("earlier")
    heads_queue = ~exists().where(
        earlier.c.workflow == row.c.workflow, earlier.c.published_number.is_(None), earlier.c.id < row.c.id
    )
    free = or_(row.c.claimed_at.is_(None), row.c.claimed_at < now - lease_s)
    found = connection.execute(
        select(row)
        .where(row.c.published_number.is_(None), heads_queue, free)
        .order_by(row.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if found is None:
        return None
    connection.execute(
        update(row).where(row.c.id == found.id).values(claimed_by=claimant, claimed_at=now)
    )
    return _record(found._mapping)


def still_waiting(connection: Connection, outbox_id: int) -> bool:
    """Whether the row is not published yet (locking it on PostgreSQL until the transaction ends)."""
    found = connection.execute(
        select(version_outbox.c.id)
        .where(version_outbox.c.id == outbox_id, version_outbox.c.published_number.is_(None))
        .with_for_update()
    ).first()
    return found is not None


def mark_published(connection: Connection, outbox_id: int, number: int) -> None:
    """Record the registry's number; the states now live in the registry, so drop them here."""
    connection.execute(
        update(version_outbox)
        .where(version_outbox.c.id == outbox_id)
        .values(published_number=number, published_at=time.time(), learner_state=None, policy_state=None,
                claimed_by=None, claimed_at=None)
    )


def mark_failed(connection: Connection, outbox_id: int, error: str, claimant: str | None = None) -> None:
    """Count a failed attempt; ``claimant`` (when given) gives up its claim so a retry need not wait
    (when the claim is no longer ``claimant``'s, the row is another publisher's and is left alone)."""
    values: dict[str, Any] = {"attempts": version_outbox.c.attempts + 1, "last_error": error[:2000]}
    if claimant is not None:
        values.update(claimed_by=None, claimed_at=None)
        connection.execute(
            update(version_outbox)
            .where(version_outbox.c.id == outbox_id, version_outbox.c.claimed_by == claimant)
            .values(**values)
        )
        return
    connection.execute(update(version_outbox).where(version_outbox.c.id == outbox_id).values(**values))


@dataclass(slots=True)
class GovernedPublication:
    """A waiting version being decided inside the governed transaction: append its audit entries,
    then mark it published; both commit together or not at all."""

    connection: Connection
    outbox_id: int

    def append(
        self, *, actor: str, action: str, subject: str, before: str | None, after: str | None, reason: str
    ) -> AuditEntry:
        return audit_trail.append(
            self.connection, actor=actor, action=action, subject=subject, before=before, after=after, reason=reason
        )

    def published(self, number: int) -> None:
        mark_published(self.connection, self.outbox_id, number)


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
