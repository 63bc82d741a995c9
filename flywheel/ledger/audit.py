"""The append-only, hash-chained audit trail.

Entry ``n`` stores ``prev_hash`` (entry ``n-1``'s hash, or 64 zeros for the
first) and ``hash = sha256(prev_hash + canonical JSON of its fields)``. Ids are
assigned by the appender as the last id + 1, under a lock, so the chain has no
gaps of its own making: editing an entry breaks its hash, deleting one leaves
a gap and a broken link, inserting one breaks a link or a hash.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from sqlalchemy import Connection, Row, select

from flywheel.ledger.tables import audit
from flywheel.ledger.records import AuditEntry

GENESIS_HASH = "0" * 64
"""The prev_hash of the first entry."""


def entry_hash(
    prev_hash: str,
    *,
    id: int,
    at: float,
    actor: str,
    action: str,
    subject: str,
    before: str | None,
    after: str | None,
    reason: str,
) -> str:
    """sha256 of ``prev_hash`` followed by the canonical JSON of the entry's fields.

    >>> entry_hash(GENESIS_HASH, id=1, at=0.5, actor="a", action="b", subject="c",
    ...            before=None, after="x", reason="r")[:16]
    '37d7e900917be219'
    """
    fields = {
        "id": id,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "before": before,
        "after": after,
        "reason": reason,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def append(
    connection: Connection,
    *,
    actor: str,
    action: str,
    subject: str,
    before: str | None,
    after: str | None,
    reason: str,
) -> AuditEntry:
    """Append one entry after the last one, in the caller's write transaction.

    On PostgreSQL the table is first locked against other writers
    (``SHARE ROW EXCLUSIVE``: appends queue, reads go on), so that reading the
    last entry and inserting the next is one step; it also works on an empty
    table, where ``SELECT ... FOR UPDATE`` would have no row to lock. On SQLite
    the ``BEGIN IMMEDIATE`` write transaction serializes appends already.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("LOCK TABLE audit IN SHARE ROW EXCLUSIVE MODE")
    last = connection.execute(
        select(audit.c.id, audit.c.hash).order_by(audit.c.id.desc()).limit(1)
    ).one_or_none()
    entry_id, prev_hash = (last.id + 1, last.hash) if last is not None else (1, GENESIS_HASH)
    fields: dict[str, Any] = {
        "id": entry_id,
        "at": time.time(),
        "actor": actor,
        "action": action,
        "subject": subject,
        "before": before,
        "after": after,
        "reason": reason,
    }
    digest = entry_hash(prev_hash, **fields)
    connection.execute(audit.insert(), [{**fields, "prev_hash": prev_hash, "hash": digest}])
    return AuditEntry(**fields, prev_hash=prev_hash, hash=digest)


def entries(connection: Connection) -> list[AuditEntry]:
    """Every entry, by id."""
    return [_entry(row) for row in connection.execute(select(audit).order_by(audit.c.id))]


def verify(trail: list[AuditEntry]) -> list[str]:
    """Problems in ``trail`` (entries by id), each naming the entry; [] when intact.

    >>> verify([])
    []
    """
    problems: list[str] = []
    prev_id, prev_hash = 0, GENESIS_HASH
    for entry in trail:
        if entry.id != prev_id + 1:
            where = f"after entry {prev_id}" if prev_id else "at the start"
            problems.append(
                f"entry {entry.id}: id gap {where} (expected id {prev_id + 1}): "
                "an entry was deleted or inserted"
            )
        if entry.prev_hash != prev_hash:
            link = f"entry {prev_id}'s hash" if prev_id else "the genesis hash"
            problems.append(
                f"entry {entry.id}: chain break, prev_hash does not match {link}: "
                "an entry before it was deleted, inserted or edited"
            )
        expected = entry_hash(
            entry.prev_hash,
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            subject=entry.subject,
            before=entry.before,
            after=entry.after,
            reason=entry.reason,
        )
        if entry.hash != expected:
            problems.append(f"entry {entry.id}: hash mismatch: the entry was edited or forged")
        prev_id, prev_hash = entry.id, entry.hash
    return problems


def _entry(row: Row[Any]) -> AuditEntry:
    m = row._mapping
    return AuditEntry(
        id=m["id"],
        at=m["at"],
        actor=m["actor"],
        action=m["action"],
        subject=m["subject"],
        before=m["before"],
        after=m["after"],
        reason=m["reason"],
        prev_hash=m["prev_hash"],
        hash=m["hash"],
    )
