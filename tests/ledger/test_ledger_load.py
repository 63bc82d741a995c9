"""The agents' load from the ledger: arrival rates and service times by SQL, on both databases."""

from __future__ import annotations

import math

from flywheel.ledger.load import agent_loads
from flywheel.ledger.tables import runs, steps

T0 = 1_000_000.0


def _run(i: int, workflow: str, agent: str, at: float, service_s: float) -> tuple[dict, list[dict]]:
    run_id = f"{workflow[:2]}{i:08d}"
    run = {"run_id": run_id, "workflow": workflow, "status": "completed", "input": {}, "answer": None,
           "metadata": {}, "config_version": f"{workflow}@v1", "waiting_step": None, "created_at": at,
           "updated_at": at, "trace_id": None, "arm": agent, "to_human": False, "gate_threshold": 0.7}
    route = {"run_id": run_id, "seq": 0, "step_id": "route", "kind": "route", "status": "done",
             "output": {"arm": agent, "propensity": 0.5}, "started_at": at, "ended_at": at}
    call = {"run_id": run_id, "seq": 1, "step_id": "classify", "kind": "agent", "status": "done",
            "output": {"agent": agent, "latency_s": service_s}, "started_at": at + 0.001,
            "ended_at": at + 0.001 + service_s}
    return run, [route, call]


def _fill(ledger) -> None:
    """wf: 600 runs over 600 s, alternating fast (0.2 s / 0.4 s) and strong (1.0 s); 60 more fast runs in
    the minute from 300 s (the peak); other: 10 runs of strong, in a later window too."""
    run_rows, step_rows = [], []
    for i in range(600):
        agent = "fast" if i % 2 == 0 else "strong"
        service = (0.2 if i % 4 == 0 else 0.4) if agent == "fast" else 1.0
        r, s = _run(i, "wf", agent, T0 + i, service)
        run_rows.append(r), step_rows.extend(s)
    for k in range(60):
        r, s = _run(1000 + k, "wf", "fast", T0 + 300 + k, 0.3)
        run_rows.append(r), step_rows.extend(s)
    for k in range(10):
        r, s = _run(k, "other", "strong", T0 + 10 * k + (5000 if k >= 5 else 0), 2.0)
        run_rows.append(r), step_rows.extend(s)
    r, s = _run(0, "unfinished", "fast", T0, 1.0)  # an agent step still running: not counted
    s[1]["ended_at"] = None
    run_rows.append(r), step_rows.extend(s)
    with ledger.engine.begin() as c:
        c.execute(runs.insert(), run_rows)
        c.execute(steps.insert(), step_rows)


def test_rates_and_service_times_per_workflow_and_agent(ledger):
    _fill(ledger)
    loads = {(s.workflow, s.agent): s for s in agent_loads(ledger.engine, since=T0, until=T0 + 1000)}
    assert set(loads) == {("wf", "fast"), ("wf", "strong"), ("other", "strong")}
    fast = loads[("wf", "fast")]
    assert fast.requests == 360
    assert math.isclose(fast.mean_rate, 360 / 598, rel_tol=1e-9)  # first arrival at 0, last at 598
    assert math.isclose(fast.peak_rate, 90 / 60)  # 30 of the alternation + 60 of the burst in [300, 360)
    # service: 150 of 0.2, 150 of 0.4, 60 of 0.3 -> mean 0.3; variance E[x^2] - mean^2
    assert math.isclose(fast.mean_service_s, 0.3, rel_tol=1e-6)
    assert math.isclose(fast.std_service_s, math.sqrt((150 * 0.04 + 150 * 0.16 + 60 * 0.09) / 360 - 0.09),
                        rel_tol=1e-4)
    assert math.isclose(fast.max_service_s, 0.4, rel_tol=1e-6)
    strong = loads[("wf", "strong")]
    # its busiest minute (30) is below its mean rate over the 598 s span: the peak is at least the mean
    assert strong.requests == 300 and strong.peak_rate == strong.mean_rate == 300 / 598
    assert math.isclose(strong.mean_service_s, 1.0, rel_tol=1e-6) and strong.std_service_s < 1e-3
    other = loads[("other", "strong")]  # the window holds its first five runs only
    assert other.requests == 5 and math.isclose(other.mean_rate, 5 / 60)  # span 40 s: at least a bucket


def test_one_workflow_and_an_empty_window(ledger):
    _fill(ledger)
    only = agent_loads(ledger.engine, since=T0, until=T0 + 1000, workflow="other", bucket_s=20.0)
    assert [(s.agent, s.requests, s.mean_rate, s.peak_rate) for s in only] == [("strong", 5, 5 / 40, 5 / 40)]
    assert agent_loads(ledger.engine, since=T0 + 10_000, until=T0 + 20_000) == []
