"""Seconds from an operator's or reviewer's action until every router replica decides with it.

One local Ray runs Flywheel with 2 ingress replicas (where routing decisions are
made, each with its own copy of the live policy) and 2 router replicas (each
following the registry's champion). The policy file here sends every learned
version to review, so each round has a fresh proposal to approve. A round:

1. drive runs with outcomes, ask the learner to propose now: a pending version;
2. approve it over HTTP (mlops token): approve_s;
3. roll back over HTTP (operator token) to the previous champion: rollback_s;
4. pin the approved version over HTTP: pin_s; then unpin (not timed).

Each time is measured from just before the HTTP call until runs (service token)
served by *both* ingress replicas (told apart by the `x-flywheel-replica`
header) report the expected config version in their decisions. Figures are
medians over rounds, with the worst beside them.

    python benchmarks/propagation.py [--rounds 5]

Writes benchmarks/results/propagation.json with approve_s, rollback_s, pin_s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
WF = "ticket_triage"
TICKET = {"text": "My invoice shows a double charge", "product": "billing", "customer_tier": "pro",
          "channel": "email"}
REVIEW_EVERYTHING = """
default:
  out_of_bounds: clip
  over_step: review
  default: {autonomy: review}
  parameters:
    cost_weight: {autonomy: frozen}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_for(root: Path):
    from flywheel.services.settings import load_settings

    (root / "policies.yaml").write_text(REVIEW_EVERYTHING)
    base = load_settings(ROOT / "configs/app.yaml")
    return base.model_copy(update={
        "workflows_dir": str(ROOT / "configs/workflows"),
        "database_url": f"sqlite:///{root}/ledger.db",
        "serve": base.serve.model_copy(update={"port": _free_port(), "ingress_replicas": 2, "router_replicas": 2}),
        "simulator": base.simulator.model_copy(update={"latency_scale": 0.0,
                                                       "scenarios_dir": str(ROOT / "configs/scenarios")}),
        "learning": base.learning.model_copy(update={
            "mlflow_tracking_uri": f"sqlite:///{root}/mlflow.db", "mlflow_artifacts": str(root / "art"),
            "publish_every_outcomes": 10**9, "publish_every_s": 10**6}),
        "governance": base.governance.model_copy(update={"policies": str(root / "policies.yaml")}),
    })


def tokens(database_url: str) -> dict[str, str]:
    from flywheel.ledger import Ledger

    ledger = Ledger(database_url)
    ledger.upgrade()
    out = {role: ledger.create_token(role, name=f"bench-{role}", created_by="benchmark")[1]
           for role in ("service", "mlops", "operator")}
    ledger.dispose()
    return out


class Bench:
    def __init__(self, url: str, tok: dict[str, str]):
        self.http = httpx.Client(base_url=url, timeout=60)
        self.h = {role: {"authorization": f"Bearer {t}"} for role, t in tok.items()}
        self.i = 0

    def run(self) -> tuple[str, str]:
        self.i += 1
        r = self.http.post(f"/v1/workflows/{WF}/runs", headers=self.h["service"],
                           json={"input": {**TICKET, "text": f"{TICKET['text']} #{self.i}"}})
        r.raise_for_status()
        return r.headers["x-flywheel-replica"], r.json()["decision"]["config_version"]

    def drive(self, n: int) -> None:
        events = []
        for _ in range(n):
            r = self.http.post(f"/v1/workflows/{WF}/runs", headers=self.h["service"], json={"input": TICKET}).json()
            events.append({"event_id": f"e-{r['run_id']}", "run_id": r["run_id"], "success": True, "quality": 0.8})
        self.http.post("/v1/outcomes", headers=self.h["service"], json={"events": events}).raise_for_status()

    def act(self, role: str, path: str, body: dict) -> dict:
        r = self.http.post(path, headers=self.h[role], json=body)
        if r.status_code != 200:
            raise RuntimeError(f"{path}: {r.status_code} {r.text}")
        return r.json()

    def until_all_replicas(self, version: str, started: float, replicas: int = 2, limit_s: float = 30) -> float:
        seen: set[str] = set()
        while time.perf_counter() - started < limit_s:
            replica, live = self.run()
            if live == version:
                seen.add(replica)
                if len(seen) >= replicas:
                    return time.perf_counter() - started
        raise RuntimeError(f"{version} not live on {replicas} replicas within {limit_s}s (seen on {seen})")


def pending_version(b: Bench, learner) -> int:
    b.drive(30)
    deadline = time.time() + 30
    while time.time() < deadline:
        done = learner.publish_now.remote().result()
        mine = [v for v in done if v and v.startswith(f"{WF}@v")]
        if mine:
            return int(mine[-1].split("@v")[1])
        time.sleep(0.5)
    raise RuntimeError("the learner proposed nothing")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/propagation.json"))
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    sys.path.insert(0, str(ROOT))
    import ray
    from ray import serve

    from flywheel.services.app import APP_NAME, run_app

    root = Path(tempfile.mkdtemp(prefix="flywheel-propagation-"))
    settings = settings_for(root)
    tok = tokens(settings.database_url)
    ray.init(include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    times: dict[str, list[float]] = {"approve_s": [], "rollback_s": [], "pin_s": []}
    try:
        run_app(settings)
        b = Bench(f"http://127.0.0.1:{settings.serve.port}", tok)
        learner = serve.get_deployment_handle("learner", app_name=APP_NAME)
        base = f"/v1/workflows/{WF}"
        first = pending_version(b, learner)  # the first version has no champion to step from: it goes live
        b.until_all_replicas(f"{WF}@v{first}", time.perf_counter())
        for rnd in range(args.rounds):
            n = pending_version(b, learner)
            t = time.perf_counter()
            out = b.act("mlops", f"{base}/versions/{n}/approve", {"reason": "benchmark"})
            times["approve_s"].append(b.until_all_replicas(f"{WF}@v{n}", t))
            t = time.perf_counter()
            out = b.act("operator", f"{base}/rollback", {"reason": "benchmark"})
            times["rollback_s"].append(b.until_all_replicas(out["live_version"], t))
            t = time.perf_counter()
            b.act("operator", f"{base}/pin", {"version": n, "reason": "benchmark"})
            times["pin_s"].append(b.until_all_replicas(f"{WF}@v{n}", t))
            b.act("operator", f"{base}/unpin", {"reason": "benchmark"})
            print(f"round {rnd + 1}: v{n} approve {times['approve_s'][-1]:.3f}s, rollback to "
                  f"{out['live_version']} {times['rollback_s'][-1]:.3f}s, pin {times['pin_s'][-1]:.3f}s",
                  flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    result = {k: round(statistics.median(v), 3) for k, v in times.items()}
    result.update({f"{k}_max": round(max(v), 3) for k, v in times.items()})
    result.update({"rounds": args.rounds, "ingress_replicas": 2, "router_replicas": 2,
                   "sync_s": settings.governance.sync_s, "target_s": 2.0,
                   "met": all(result[k] <= 2.0 for k in times)})
    print(f"\n{'action':<10} {'median s':>9} {'max s':>7}  target <= 2 s")
    for k in times:
        print(f"{k[:-2]:<10} {result[k]:>9.3f} {result[k + '_max']:>7.3f}  {'met' if result[k] <= 2 else 'NOT MET'}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
