"""The dashboard's and the metrics' ledger queries: right counts per time bucket, and fast on
a ledger of 100,000 runs (aggregates by SQL, on both databases)."""

from __future__ import annotations

import time

from flywheel.ledger import dashboard, observe
from flywheel.ledger.tables import audit, learning_events, outcomes, runs

WF = "wf"
ARMS = ("fast", "strong")


def _fill(ledger, n: int, *, start: float, span_s: float) -> None:
    """`n` runs spread over `span_s` seconds from `start`: arm alternating, every 4th to a
    human, threshold 0.7; an outcome for every other run, every 3rd of them a failure."""
    step = span_s / n
    run_rows, outcome_rows = [], []
    for i in range(n):
        at = start + i * step
        run_rows.append({"run_id": f"r{i:08d}", "workflow": WF, "status": "completed", "input": {}, "answer": None,
                         "metadata": {}, "config_version": "wf@v1", "waiting_step": None, "created_at": at,
                         "updated_at": at, "trace_id": None, "arm": ARMS[i % 2], "to_human": i % 4 == 0,
                         "gate_threshold": 0.7})
        if i % 2 == 0:
            outcome_rows.append({"event_id": f"e{i}", "run_id": f"r{i:08d}", "workflow": WF, "success": i % 3 != 0,
                                 "quality": None, "cost": None, "latency_s": None, "human_override": False,
                                 "source": "t", "reward": 1.0 if i % 3 else 0.0, "occurred_at": None,
                                 "received_at": at + 1.0})
    with ledger.engine.begin() as c:
        for k in range(0, n, 10_000):
            c.execute(runs.insert(), run_rows[k:k + 10_000])
        for k in range(0, len(outcome_rows), 10_000):
            c.execute(outcomes.insert(), outcome_rows[k:k + 10_000])
    if ledger.dialect == "postgresql":  # statistics, as autovacuum keeps them after a bulk load
        with ledger.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("ANALYZE")


def test_series_counts_per_bucket_and_marks(ledger):
    now = time.time()
    _fill(ledger, 120, start=now - 120, span_s=120)  # one run a second
    with ledger.engine.begin() as c:
        c.execute(learning_events.insert(), [{"at": now - 30, "workflow": WF, "kind": "drift", "arm": "fast",
                                              "position": 1, "detail": {}}])
        c.execute(audit.insert(), [{"at": now - 10, "actor": "ml", "action": "approve", "subject": "wf@v2",
                                    "before": None, "after": None, "reason": "ok", "prev_hash": "0" * 64,
                                    "hash": "1" * 64}])
    s = dashboard.series(ledger.engine, WF, since=now - 120, until=now, buckets=4)
    assert [b.runs for b in s.buckets] == [30, 30, 30, 30]
    assert all(b.arms == {"fast": 15, "strong": 15} for b in s.buckets)
    assert sum(b.to_human for b in s.buckets) == 30 and all(abs(b.threshold - 0.7) < 1e-9 for b in s.buckets)
    assert sum(b.outcomes for b in s.buckets) == 60
    # failures among unattended runs: even i, i % 4 != 0, i % 3 == 0 -> i in 6, 18, 30, ... (10 of 30)
    assert sum(b.unattended_errors for b in s.buckets) == 10
    assert sum(b.unattended_judged for b in s.buckets) == 30
    assert [(m.kind, m.label) for m in s.marks] == [("drift", "drift on fast"), ("approve", "wf@v2")]
    recent = dashboard.recent_runs(ledger.engine, WF, arm="strong", limit=5)
    assert [r.run_id for r in recent] == [f"r{i:08d}" for i in (119, 117, 115, 113, 111)]
    snap = observe.loop_snapshot(ledger.engine, [WF], now=now)
    assert snap.workflows[WF].human_share == 0.25
    assert abs(snap.workflows[WF].unattended_error_rate - 10 / 30) < 1e-9
    assert snap.workflows[WF].version_changes == {"approve": 1} and snap.workflows[WF].drift_events == 1
    facts = observe.outcome_facts(ledger.engine, [1, 2])
    assert {f.arm for f in facts} == {"fast"} and all(abs(f.lag_s - 1.0) < 1e-6 for f in facts)


def test_a_page_of_100k_runs_answers_in_under_a_second(ledger):
    now = time.time()
    _fill(ledger, 100_000, start=now - 86_400, span_s=86_400)
    timings = {}
    for name, query in {
        "series": lambda: dashboard.series(ledger.engine, WF, since=now - 86_400, until=now, buckets=120),
        "runs": lambda: dashboard.recent_runs(ledger.engine, WF, status="completed", limit=100),
    }.items():
        best = float("inf")
        for _ in range(3):  # a warm page (pool connected, caches filled): the best of three
            started = time.perf_counter()
            found = query()
            best = min(best, time.perf_counter() - started)
        timings[name] = best
        if name == "series":
            assert sum(b.runs for b in found.buckets) == 100_000 and sum(b.outcomes for b in found.buckets) == 50_000
        else:
            assert len(found) == 100
    assert max(timings.values()) < 1.0, timings
