"""Several outcome batches in one transaction (group commit), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

from tests.ledger.ledger_helpers import make_run, race, reward_of

from flywheel.ledger import Ledger
from flywheel.ledger.records import OutcomeEvent


def test_batches_are_classified_in_order_as_if_recorded_one_after_another(ledger: Ledger) -> None:
    ledger.write_runs([make_run("r1"), make_run("r2", workflow="triage")])
    assert ledger.record_outcomes([OutcomeEvent("old", "r1", success=True)], reward_of).new == 1
    reports = ledger.record_outcome_batches(
        [
            [OutcomeEvent("a", "r1", success=True), OutcomeEvent("b", "r2", quality=0.5)],
            [],
            [
                OutcomeEvent("b", "r2", quality=0.1),  # accepted in the first batch
                OutcomeEvent("old", "r1", success=False),  # stored before
                OutcomeEvent("c", "ghost", success=True),
                OutcomeEvent("d", "r1"),
                OutcomeEvent("e", "r1", success=False),
            ],
        ],
        reward_of,
    )
    assert [(r.new, r.duplicate) for r in reports] == [(2, 0), (0, 0), (1, 2)]
    assert [r.event_id for r in reports[2].rejected] == ["c", "d"]
    assert reports[2].rejected[0].reason == "unknown run_id 'ghost'"
    assert reports[0].rejected == reports[1].rejected == []
    stored = ledger.outcomes_after(0)
    assert [o.event_id for o in stored] == ["old", "a", "b", "e"]
    assert [o.position for o in stored[1:]] == reports[0].new_positions + reports[2].new_positions
    assert stored[2].quality == 0.5  # the first batch's "b", not the second's
    assert ledger.record_outcome_batches([[], []], reward_of)[1].new == 0


def test_concurrent_group_commits_with_overlapping_ids_store_each_event_once(
    make_ledger: Callable[[], Ledger],
) -> None:
    ledgers = [make_ledger(), make_ledger()]
    ledgers[0].upgrade()
    ledgers[0].write_runs([make_run(f"r{i}") for i in range(4)])
    # Four writers, each committing three batches; neighbouring batches share half their ids.
    groups = [
        [[OutcomeEvent(f"e{j}", f"r{j % 4}", success=True) for j in range(start, start + 60)]
         for start in (w * 30, w * 30 + 20, w * 30 + 40)]
        for w in range(4)
    ]
    reports = race(
        [lambda g=g, k=k: ledgers[k % 2].record_outcome_batches(g, reward_of) for k, g in enumerate(groups)]
    )
    unique = {e.event_id for g in groups for batch in g for e in batch}
    flat = [r for rs in reports for r in rs]
    assert sum(r.new for r in flat) == len(unique) == 190
    assert sum(r.new + r.duplicate for r in flat) == sum(len(b) for g in groups for b in g)
    assert all(r.rejected == [] for r in flat)
    stored = ledgers[1].outcomes_after(0, limit=10_000)
    assert sorted(o.event_id for o in stored) == sorted(unique)
    assert sorted(p for r in flat for p in r.new_positions) == [o.position for o in stored]
