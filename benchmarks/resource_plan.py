"""A resource plan on a simulated load: chosen autoscaling, simulated p95 against the target, replicas.

    python benchmarks/resource_plan.py [--trials 32] [--seed 0]

Half an hour of simulated ticket_triage traffic goes into a SQLite ledger as runs with
agent steps: Poisson arrivals per agent at a base rate, four times that for five
minutes, lognormal service times; `frontier` is a vllm agent on a GPU model of
configs/models.yaml (qwen2.5-7b-instruct: 64 sequences a replica, one L4). The
plan is made as `flywheel tune ticket_triage --resources` makes it (the ledger's
aggregates, the Tune job on a local Ray, the discrete-event check), against the
workflow's targets.p95_latency_s. Baselines in the same run: the closed-form plan
the search starts from, and static provisioning for the peak (max replicas always).
Writes benchmarks/results/resource_plan.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from flywheel.eval.resource_check import simulate_plan
from flywheel.ledger import Ledger
from flywheel.ledger.load import agent_loads
from flywheel.ledger.tables import runs, steps
from flywheel.learners.resource_tune import search_resources
from flywheel.services.resource_planning import demands_of
from flywheel.services.runtime import load_workflows
from flywheel.services.settings import AgentSettings, load_settings
from flywheel.cli.tune import plan_table

ROOT = Path(__file__).resolve().parents[1]
WF = "ticket_triage"
HOUR = 1800.0  # the simulated span (s)
# agent: (base rate /s, mean service s, lognormal sigma)
LOAD = {"fast": (20.0, 0.3, 0.35), "balanced": (8.0, 0.6, 0.35), "strong": (3.0, 1.1, 0.4),
        "frontier": (60.0, 0.8, 0.3)}
BURST = (900.0, 1200.0, 4.0)  # from, to (s), rate factor


def simulated_ledger(url: str, seed: int) -> int:
    """Half an hour of agent calls in the ledger at `url`; returns how many."""
    rng = np.random.default_rng(seed)
    run_rows, step_rows = [], []
    for agent, (rate, mean_s, sigma) in LOAD.items():
        t = 0.0
        while t < HOUR:
            factor = BURST[2] if BURST[0] <= t < BURST[1] else 1.0
            t += rng.exponential(1.0 / (rate * factor))
            service = float(rng.lognormal(np.log(mean_s) - sigma**2 / 2, sigma))
            run_id = f"{agent[:3]}{len(run_rows):09d}"
            run_rows.append({"run_id": run_id, "workflow": WF, "status": "completed", "input": {}, "answer": None,
                             "metadata": {}, "config_version": f"{WF}@v1", "waiting_step": None, "created_at": t,
                             "updated_at": t + service, "trace_id": None, "arm": agent, "to_human": False,
                             "gate_threshold": 0.7})
            step_rows.append({"run_id": run_id, "seq": 1, "step_id": "classify", "kind": "agent", "status": "done",
                              "output": {"agent": agent}, "started_at": t, "ended_at": t + service})
    ledger = Ledger(url)
    ledger.upgrade()
    with ledger.engine.begin() as c:
        for k in range(0, len(run_rows), 20000):
            c.execute(runs.insert(), run_rows[k:k + 20000])
            c.execute(steps.insert(), step_rows[k:k + 20000])
    ledger.dispose()
    return len(run_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{d}/ledger.db"
        calls = simulated_ledger(url, args.seed)
        settings = load_settings(ROOT / "configs" / "app.yaml")
        agents = {a: AgentSettings(backend="sim", model=a, max_ongoing_requests=4, num_cpus=1.0)
                  for a in ("fast", "balanced", "strong")}
        agents["frontier"] = AgentSettings(backend="vllm", model="qwen2.5-7b-instruct")
        settings = settings.model_copy(update={"database_url": url, "agents": agents})
        ledger = Ledger(url)
        loads = agent_loads(ledger.engine, since=0.0, until=HOUR + 60)
        ledger.dispose()
    demands = demands_of(settings, load_workflows(settings), WF, loads)
    result = search_resources(demands, trials=args.trials, seed=args.seed, progress=False)
    checked = simulate_plan(demands, result, seed=args.seed)
    static = sum(d.replica_cost * result.assessments[d.agent].peak_replicas for d in demands)
    rows = [{"agent": c.agent, "min_replicas": result.scalings[c.agent].min_replicas,
             "max_replicas": result.scalings[c.agent].max_replicas,
             "target_ongoing_requests": round(result.scalings[c.agent].target_ongoing_requests, 3),
             "replicas_mean": c.mean_replicas, "replicas_peak": c.peak_replicas, "p95_target_s": c.target_s,
             "sim_p95_mean_s": round(c.mean_p95_s, 4), "sim_p95_peak_s": round(c.peak_p95_s, 4), "meets": c.meets,
             "arrival_rate_mean": round(d.load.mean_rate, 3), "arrival_rate_peak": round(d.load.peak_rate, 3),
             "service_mean_s": round(d.load.mean_service_s, 4), "slots": d.load.slots,
             "accelerators": result.scalings[c.agent].max_replicas * d.accelerators_per_replica}
            for c, d in zip(checked, demands)]
    out = {
        "workflow": WF, "agent_calls": calls, "trials": result.trials, "seconds": round(result.seconds, 2),
        "cost": round(sum(a.cost for a in result.assessments.values()), 3),
        "closed_form_cost": round(result.start_cost, 3), "static_peak_cost": round(static, 3),
        "all_meet_p95_in_simulation": all(c.meets for c in checked), "agents": rows,
    }
    print(plan_table(rows))
    print(json.dumps({k: out[k] for k in ("cost", "closed_form_cost", "static_peak_cost", "trials", "seconds",
                                          "all_meet_p95_in_simulation")}))
    (ROOT / "benchmarks" / "results" / "resource_plan.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
