"""The runtime's outcome path: concurrent batches share commits, stay idempotent, wake the learner once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.ledger.ledger_helpers import make_run

from flywheel.ledger.records import OutcomeEvent
from flywheel.services.agents.local import LocalAgents
from flywheel.services.runtime import Runtime
from flywheel.services.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runtime(database_url: str):
    settings = load_settings(ROOT / "configs/app.yaml").model_copy(update={"database_url": database_url})
    rt = Runtime.from_settings(settings, LocalAgents({}))
    rt.ledger.write_runs([make_run(f"r{i}", workflow="ticket_triage") for i in range(5)])
    return rt  # each test closes it on its own event loop (the writers' tasks live there)


def test_concurrent_overlapping_batches_are_stored_once_in_shared_commits(runtime: Runtime) -> None:
    commits: list[int] = []
    record = runtime.ledger.record_outcome_batches

    def counted(batches, reward_of):
        commits.append(len(batches))
        return record(batches, reward_of)

    runtime.ledger.record_outcome_batches = counted  # type: ignore[method-assign]
    told: list[list[int]] = []
    runtime.on_outcomes(told.append)
    # 20 requests of 50 events; request k overlaps request k-1 in 25 ids; one names an unknown run.
    batches = [
        [OutcomeEvent(f"e{j}", f"r{j % 5}", quality=0.5) for j in range(25 * k, 25 * k + 50)]
        + ([OutcomeEvent(f"x{k}", "ghost", success=True)] if k == 7 else [])
        for k in range(20)
    ]

    async def main():
        reports = await asyncio.gather(*(runtime.post_outcomes(b) for b in batches))
        await asyncio.sleep(0)  # the coalesced notification runs on the next loop turn
        again = await runtime.post_outcomes(batches[3])
        await runtime.close()
        return reports, again

    reports, again = asyncio.run(main())
    assert sum(r.new for r in reports) == 25 * 21
    assert sum(r.duplicate for r in reports) == 20 * 50 - 25 * 21
    assert [(r.event_id, r.reason) for r in reports[7].rejected] == [("x7", "unknown run_id 'ghost'")]
    assert commits[-1] == 1  # the repeat, alone
    commits.pop()
    assert sum(commits) == 20 and len(commits) < 20  # group commit: fewer transactions than requests
    stored = runtime.ledger.outcomes_after(0, limit=10_000)
    assert sorted(o.event_id for o in stored) == sorted({f"e{j}" for j in range(25 * 21)})
    assert len(told) <= len(commits)  # one wake-up per commit at most, not one per request
    assert sorted(p for t in told for p in t) == [o.position for o in stored]
    assert all(o.workflow == "ticket_triage" and o.cost == 0.02 for o in stored)
    assert (again.new, again.duplicate) == (0, 50)


def test_a_failed_commit_fails_every_request_that_shared_it(runtime: Runtime) -> None:
    def broken(batches, reward_of):
        raise RuntimeError("disk full")

    runtime.ledger.record_outcome_batches = broken  # type: ignore[method-assign]

    async def main():
        results = await asyncio.gather(
            *(runtime.post_outcomes([OutcomeEvent(f"e{k}", "r1", success=True)]) for k in range(3)),
            return_exceptions=True,
        )
        await runtime.close()
        return results

    results = asyncio.run(main())
    assert [str(r) for r in results] == ["disk full"] * 3
