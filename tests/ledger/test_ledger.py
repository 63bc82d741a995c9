"""The ledger on SQLite and PostgreSQL: schema, runs, resumes, outcomes and stats.

Every test that takes ``ledger`` or ``make_ledger`` runs once per database.
The audit trail's tests are in test_ledger_audit.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from tests.ledger.ledger_helpers import T0, make_run, race, reward_of
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from flywheel.ledger import Ledger
from flywheel.ledger import outcomes as outcome_log
from flywheel.ledger.migrate import current_revision, head_revision
from flywheel.ledger.tables import Base
from flywheel.ledger.records import OutcomeEvent, RunRecord, RunView, StepRecord

TABLES = {"runs", "steps", "decisions", "outcomes", "audit", "learning_events", "tokens", "version_outbox"}


# -- schema -------------------------------------------------------------------


def test_upgrade_is_idempotent_and_keeps_data(ledger: Ledger) -> None:
    assert current_revision(ledger.engine) == head_revision() == "0005"
    ledger.write_runs([make_run("r1")])
    ledger.upgrade()
    ledger.upgrade()
    assert current_revision(ledger.engine) == head_revision()
    view = ledger.get_run("r1")
    assert view is not None and view.run.run_id == "r1"


def test_migration_creates_exactly_the_models_schema(ledger: Ledger) -> None:
    with ledger.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_tables_and_version_table_live_in_the_tests_own_database(ledger: Ledger) -> None:
    names = set(inspect(ledger.engine).get_table_names())
    assert names == TABLES | {"alembic_version"}
    if ledger.dialect == "postgresql":
        with ledger.engine.connect() as connection:
            schema = connection.execute(text("SELECT current_schema()")).scalar_one()
            located = set(
                connection.execute(
                    text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                    {"s": schema},
                ).scalars()
            )
            public = set(
                connection.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = 'public' AND table_name IN "
                        "('runs', 'steps', 'decisions', 'outcomes', 'audit', 'alembic_version')"
                    )
                ).scalars()
            )
        assert schema.startswith("fw_")
        assert located == TABLES | {"alembic_version"}
        assert public == set()


def test_sqlite_connections_get_the_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "ledger.db"
    ledger = Ledger(f"sqlite:///{path}")
    try:
        ledger.upgrade()
        assert path.exists()
        with ledger.engine.connect() as connection:
            values = [
                connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            ]
        assert values == ["wal", 1, 1, 5000]  # synchronous NORMAL is 1
    finally:
        ledger.dispose()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_from_env_prefers_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    from_env = Ledger.from_env(f"sqlite:///{tmp_path / 'default.db'}")
    monkeypatch.delenv("FLYWHEEL_DATABASE_URL")
    default = Ledger.from_env(f"sqlite:///{tmp_path / 'default.db'}")
    try:
        assert from_env.engine.url.database == str(tmp_path / "env.db")
        assert default.engine.url.database == str(tmp_path / "default.db")
    finally:
        from_env.dispose()
        default.dispose()


# -- runs ---------------------------------------------------------------------


def test_write_runs_then_get_run_returns_the_same_data(ledger: Ledger) -> None:
    runs = [make_run("r1"), make_run("r2", arm=None, status="running", agent_output={"x": [1, 2]})]
    ledger.write_runs(runs)
    for run in runs:
        assert ledger.get_run(run.run_id) == RunView(run=run, outcomes=[])
    assert ledger.get_run("missing") is None


def test_a_waiting_run_is_updated_in_place(ledger: Ledger) -> None:
    waiting = make_run("r1", status="waiting", waiting_step="review")
    ledger.write_runs([waiting])
    done_step = StepRecord("r1", 2, "review", "human", "done", {"approved": True}, T0 + 5, T0 + 6)
    update = RunRecord(
        run_id="r1",
        workflow="support",
        status="completed",
        input={"ignored": True},  # only status, answer, updated_at and waiting_step change
        answer={"text": "approved"},
        config_version="v1",
        created_at=T0 + 99,
        updated_at=T0 + 6,
        steps=[waiting.steps[1], done_step],  # an already stored step is not inserted again
    )
    ledger.write_runs([update])
    view = ledger.get_run("r1")
    assert view is not None
    assert view.run.status == "completed"
    assert (view.run.answer, view.run.waiting_step) == ({"text": "approved"}, None)
    assert (view.run.updated_at, view.run.created_at, view.run.input) == (T0 + 6, T0, waiting.input)
    assert view.run.steps == [*waiting.steps, done_step]
    assert view.run.decision == waiting.decision


def test_write_runs_is_one_transaction(ledger: Ledger) -> None:
    later = make_run("r1", status="completed", t=T0 + 10)
    bad = make_run("r3")
    bad.steps.append(StepRecord("nope", 0, "x", "agent", "done", {}, T0, None))  # no such run
    with pytest.raises(IntegrityError):
        ledger.write_runs([make_run("r1", status="running"), make_run("r2"), bad])
    assert [ledger.get_run(r) for r in ("r1", "r2", "r3")] == [None, None, None]
    # The same run twice in a batch: the last state wins.
    ledger.write_runs([make_run("r1", status="running"), later])
    view = ledger.get_run("r1")
    assert view is not None and (view.run.status, view.run.updated_at) == ("completed", later.updated_at)


def test_resume_run_is_compare_and_set(ledger: Ledger) -> None:
    ledger.write_runs([make_run("r1", status="waiting", waiting_step="review")])
    step = StepRecord("r1", 2, "review", "human", "done", {"ok": True}, T0 + 1, T0 + 2)
    update = make_run("r1", status="completed", t=T0 + 2)
    update.steps = [step]
    update.decision = None
    assert not ledger.resume_run("r1", expected_status="running", update=update)
    assert not ledger.resume_run("missing", expected_status="waiting", update=update)
    view = ledger.get_run("r1")
    assert view is not None and view.run.status == "waiting" and len(view.run.steps) == 2
    assert ledger.resume_run("r1", expected_status="waiting", update=update)
    assert not ledger.resume_run("r1", expected_status="waiting", update=update)
    view = ledger.get_run("r1")
    assert view is not None
    assert (view.run.status, view.run.answer, view.run.waiting_step) == ("completed", {"text": "hi"}, None)
    assert view.run.steps[2:] == [step]


def test_racing_resumes_succeed_exactly_once(make_ledger: Callable[[], Ledger]) -> None:
    ledgers = [make_ledger(), make_ledger()]  # two engines: no shared in-process lock
    ledgers[0].upgrade()
    run_ids = [f"race-{i}" for i in range(8)]
    ledgers[0].write_runs([make_run(r, status="waiting", waiting_step="review") for r in run_ids])
    contenders = 4
    for run_id in run_ids:

        def resume(k: int, run_id: str = run_id) -> bool:
            update = make_run(run_id, status="completed", arm=None, t=T0 + k)
            update.answer = {"by": k}
            # Distinct seq per contender: a loser's step would show up, not be swallowed.
            update.steps = [StepRecord(run_id, 2 + k, "review", "human", "done", {"by": k}, T0, T0)]
            return ledgers[k % 2].resume_run(run_id, expected_status="waiting", update=update)

        results = race([lambda k=k: resume(k) for k in range(contenders)])
        assert results.count(True) == 1, results
        winner = results.index(True)
        view = ledgers[0].get_run(run_id)
        assert view is not None
        assert view.run.answer == {"by": winner}
        assert [s.output for s in view.run.steps[2:]] == [{"by": winner}]


def test_run_exists_reports_workflow_and_agent_cost(ledger: Ledger) -> None:
    ledger.write_runs(
        [
            make_run("r1", workflow="support"),
            make_run("r2", workflow="triage", agent_output={"text": "no cost reported"}),
            make_run("r3", status="running", arm=None, agent_output={"cost": 0.5}),
        ]
    )
    ledger.write_runs([RunRecord("r4", "triage", "running", {}, None, "v1", T0, T0)])  # no steps
    found = ledger.run_exists(["r1", "r2", "r3", "r4", "nope", "r1"])
    assert found == {
        "r1": ("support", 0.02, 1.5),
        "r2": ("triage", 0.0, 0.0),
        "r3": ("support", 0.5, 0.0),
        "r4": ("triage", 0.0, 0.0),
    }
    assert ledger.run_exists([]) == {}


# -- outcomes -----------------------------------------------------------------


def test_record_outcomes_classifies_rewards_and_falls_back_to_agent_figures(ledger: Ledger) -> None:
    ledger.write_runs([make_run("r1"), make_run("r2", workflow="triage")])
    batch = [
        OutcomeEvent("e1", "r1", success=True),
        OutcomeEvent("e2", "r2", quality=0.5, cost=0.1, latency_s=3.0, human_override=True, source="ui"),
        OutcomeEvent("e1", "r1", success=False),  # duplicate within the batch
        OutcomeEvent("e3", "ghost", success=True),
        OutcomeEvent("e4", "r1"),
        OutcomeEvent("e5", "r1", quality=1.5),
        OutcomeEvent("e6", "r1", quality=-0.1, success=True),
    ]
    report = ledger.record_outcomes(batch, reward_of)
    assert (report.new, report.duplicate) == (2, 1)
    assert [(r.event_id, r.reason) for r in report.rejected] == [
        ("e3", "unknown run_id 'ghost'"),
        ("e4", "needs success or quality"),
        ("e5", "quality must be within [0, 1], got 1.5"),
        ("e6", "quality must be within [0, 1], got -0.1"),
    ]
    assert len(report.new_positions) == 2 and report.new_positions[0] < report.new_positions[1]

    stored = ledger.outcomes_after(0)
    assert [(o.position, o.event_id, o.workflow) for o in stored] == [
        (report.new_positions[0], "e1", "support"),
        (report.new_positions[1], "e2", "triage"),
    ]
    first, second = stored
    assert (first.cost, first.latency_s, first.success, first.quality) == (0.02, 1.5, True, None)
    assert first.reward == pytest.approx(1.0 - 10 * 0.02 - 0.1 * 1.5)
    assert (second.cost, second.latency_s, second.human_override, second.source) == (0.1, 3.0, True, "ui")
    assert second.reward == pytest.approx(0.5 - 10 * 0.1 - 0.1 * 3.0 - 0.5)
    assert all(o.received_at > T0 for o in stored)

    again = ledger.record_outcomes(
        [OutcomeEvent("e2", "r2", quality=0.9), OutcomeEvent("e7", "r1", success=False)], reward_of
    )
    assert (again.new, again.duplicate, again.rejected) == (1, 1, [])
    assert again.new_positions[0] > report.new_positions[1]
    view = ledger.get_run("r1")
    assert view is not None and [o.event_id for o in view.outcomes] == ["e1", "e7"]


def test_a_row_stored_by_a_concurrent_batch_counts_as_duplicate(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.write_runs([make_run("r1")])
    assert ledger.record_outcomes([OutcomeEvent("e1", "r1", success=True)], reward_of).new == 1
    # As if another batch stored e1 between this batch's check and its insert:
    monkeypatch.setattr(outcome_log, "_stored_event_ids", lambda connection, ids: set())
    report = ledger.record_outcomes(
        [OutcomeEvent("e1", "r1", success=True), OutcomeEvent("e2", "r1", success=True)], reward_of
    )
    assert (report.new, report.duplicate, len(report.new_positions)) == (1, 1, 1)
    assert [o.event_id for o in ledger.outcomes_after(0)] == ["e1", "e2"]


def test_concurrent_identical_batches_store_each_event_once(make_ledger: Callable[[], Ledger]) -> None:
    ledgers = [make_ledger(), make_ledger()]
    ledgers[0].upgrade()
    ledgers[0].write_runs([make_run("r1"), make_run("r2")])
    for round_ in range(5):
        batch = [OutcomeEvent(f"{round_}-{i}", f"r{1 + i % 2}", success=i % 3 == 0) for i in range(40)]
        reports = race([lambda k=k: ledgers[k % 2].record_outcomes(batch, reward_of) for k in range(4)])
        assert sum(r.new for r in reports) == 40
        assert sum(r.duplicate for r in reports) == 3 * 40
        assert all(r.rejected == [] for r in reports)
        positions = sorted(p for r in reports for p in r.new_positions)
        assert len(set(positions)) == 40
    stored = ledgers[1].outcomes_after(0, limit=10_000)
    assert len(stored) == len({o.event_id for o in stored}) == 200
    assert [o.position for o in stored] == sorted(o.position for o in stored)


def test_outcomes_after_pages_in_position_order(ledger: Ledger) -> None:
    ledger.write_runs([make_run("a1", workflow="alpha"), make_run("b1", workflow="beta")])
    events = [OutcomeEvent(f"e{i:02d}", "a1" if i % 3 else "b1", quality=i / 30) for i in range(25)]
    report = ledger.record_outcomes(events, reward_of)
    assert report.new == 25

    pages, cursor = [], 0
    while page := ledger.outcomes_after(cursor, limit=10):
        pages.append(page)
        cursor = page[-1].position
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [o.event_id for p in pages for o in p] == [e.event_id for e in events]
    assert [o.position for p in pages for o in p] == report.new_positions

    beta = ledger.outcomes_after(0, workflow="beta")
    assert [o.event_id for o in beta] == [e.event_id for e in events if e.run_id == "b1"]
    assert [o.event_id for o in ledger.outcomes_after(beta[2].position, workflow="beta", limit=2)] == [
        beta[3].event_id,
        beta[4].event_id,
    ]
    assert ledger.outcomes_after(report.new_positions[-1]) == []


def test_workflow_stats(ledger: Ledger) -> None:
    ledger.write_runs(
        [
            make_run("r1", arm="small"),
            make_run("r2", arm="small"),
            make_run("r3", arm="large", status="waiting", waiting_step="review"),
            make_run("r4", arm=None, status="running"),
            make_run("t1", workflow="triage", arm="large"),
        ]
    )
    ledger.record_outcomes(
        [
            OutcomeEvent("e1", "r1", quality=1.0, cost=0.0, latency_s=0.0),
            OutcomeEvent("e2", "r2", quality=0.5, cost=0.0, latency_s=0.0),
            OutcomeEvent("e3", "t1", quality=0.0, cost=0.0, latency_s=0.0),
        ],
        reward_of,
    )
    stats = ledger.workflow_stats("support")
    assert (stats.workflow, stats.runs, stats.waiting, stats.outcomes) == ("support", 4, 1, 2)
    assert stats.mean_reward == pytest.approx(0.75)
    assert stats.route_shares == pytest.approx({"small": 2 / 3, "large": 1 / 3})
    empty = ledger.workflow_stats("nothing")
    assert (empty.runs, empty.waiting, empty.outcomes) == (0, 0, 0)
    assert (empty.mean_reward, empty.route_shares) == (None, {})
