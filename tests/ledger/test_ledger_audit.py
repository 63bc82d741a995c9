"""The ledger's audit trail on SQLite and PostgreSQL: chaining, concurrency, tampering."""

from __future__ import annotations

from collections.abc import Callable

from tests.ledger.ledger_helpers import race
from sqlalchemy import text

from flywheel.ledger import Ledger
from flywheel.ledger.audit import GENESIS_HASH, entry_hash


def _fill(ledger: Ledger, count: int = 5) -> None:
    for i in range(1, count + 1):
        ledger.append_audit(
            actor="learner",
            action="promote",
            subject=f"support/router@v{i}",
            before=f'{{"version": {i - 1}}}' if i > 1 else None,
            after=f'{{"version": {i}}}',
            reason=f"step {i}",
        )


def _sql(ledger: Ledger, statement: str, **params: object) -> None:
    with ledger.engine.begin() as connection:
        connection.execute(text(statement), params)


def test_entries_are_hash_chained(ledger: Ledger) -> None:
    assert ledger.audit_entries() == [] and ledger.verify_audit() == []
    first = ledger.append_audit(
        actor="ops", action="pause", subject="support", before=None, after=None, reason=""
    )
    _fill(ledger, 3)
    entries = ledger.audit_entries()
    assert entries[0] == first
    assert [e.id for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == GENESIS_HASH
    for prev, entry in zip(entries, entries[1:]):
        assert entry.prev_hash == prev.hash and entry.at >= prev.at
    for e in entries:
        assert e.hash == entry_hash(
            e.prev_hash, id=e.id, at=e.at, actor=e.actor, action=e.action,
            subject=e.subject, before=e.before, after=e.after, reason=e.reason,
        )
    assert ledger.verify_audit() == []


def test_concurrent_appends_keep_one_chain(make_ledger: Callable[[], Ledger]) -> None:
    ledgers = [make_ledger(), make_ledger()]  # two engines: the database serializes them
    ledgers[0].upgrade()

    def append_many(k: int) -> int:
        for i in range(10):
            ledgers[k % 2].append_audit(
                actor=f"t{k}", action="set", subject="x", before=None, after=str(i), reason="load"
            )
        return k

    race([lambda k=k: append_many(k) for k in range(4)])
    entries = ledgers[1].audit_entries()
    assert [e.id for e in entries] == list(range(1, 41))
    assert ledgers[1].verify_audit() == []


def test_an_edited_entry_is_named(ledger: Ledger) -> None:
    _fill(ledger)
    _sql(ledger, "UPDATE audit SET reason = 'nothing to see' WHERE id = 3")
    problems = ledger.verify_audit()
    assert len(problems) == 1 and problems[0].startswith("entry 3: hash mismatch")


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(ledger: Ledger) -> None:
    _fill(ledger)
    e = ledger.audit_entries()[1]
    forged = entry_hash(
        e.prev_hash, id=e.id, at=e.at, actor="mallory", action=e.action,
        subject=e.subject, before=e.before, after=e.after, reason=e.reason,
    )
    _sql(ledger, "UPDATE audit SET actor = 'mallory', hash = :h WHERE id = 2", h=forged)
    problems = ledger.verify_audit()
    assert len(problems) == 1 and problems[0].startswith("entry 3: chain break")


def test_a_deleted_entry_is_named(ledger: Ledger) -> None:
    _fill(ledger)
    _sql(ledger, "DELETE FROM audit WHERE id = 3")
    problems = ledger.verify_audit()
    assert [p.split(":")[0] for p in problems] == ["entry 4", "entry 4"]
    assert "id gap after entry 2" in problems[0] and "chain break" in problems[1]


def test_deleting_the_first_entry_is_noticed(ledger: Ledger) -> None:
    _fill(ledger)
    _sql(ledger, "DELETE FROM audit WHERE id = 1")
    problems = ledger.verify_audit()
    assert problems and all(p.startswith("entry 2:") for p in problems)


def test_an_inserted_entry_is_named(ledger: Ledger) -> None:
    _fill(ledger)
    last = ledger.audit_entries()[-1]
    row = dict(
        id=6, at=last.at + 1, actor="mallory", action="promote", subject="support/router@v9",
        before=None, after="{}", reason="trust me", prev_hash=last.hash, hash="f" * 64,
    )
    _sql(
        ledger,
        "INSERT INTO audit (id, at, actor, action, subject, before, after, reason, prev_hash, hash) "
        "VALUES (:id, :at, :actor, :action, :subject, :before, :after, :reason, :prev_hash, :hash)",
        **row,
    )
    problems = ledger.verify_audit()
    assert len(problems) == 1 and problems[0].startswith("entry 6: hash mismatch")

    # A well-forged row slipped in with a free id further on still leaves a gap.
    row.update(id=10, prev_hash="f" * 64)
    fields = ("id", "at", "actor", "action", "subject", "before", "after", "reason")
    row["hash"] = entry_hash(row["prev_hash"], **{k: row[k] for k in fields})
    _sql(
        ledger,
        "INSERT INTO audit (id, at, actor, action, subject, before, after, reason, prev_hash, hash) "
        "VALUES (:id, :at, :actor, :action, :subject, :before, :after, :reason, :prev_hash, :hash)",
        **row,
    )
    problems = ledger.verify_audit()
    assert problems[0].startswith("entry 6: hash mismatch")
    assert problems[1:] == [
        "entry 10: id gap after entry 6 (expected id 7): an entry was deleted or inserted"
    ]


def test_appends_continue_the_chain_after_reopening(make_ledger: Callable[[], Ledger]) -> None:
    first = make_ledger()
    first.upgrade()
    _fill(first, 2)
    first.dispose()
    second = make_ledger()
    entry = second.append_audit(actor="a", action="b", subject="c", before=None, after=None, reason="r")
    assert entry.id == 3 and entry.prev_hash == second.audit_entries()[1].hash
    assert second.verify_audit() == []
