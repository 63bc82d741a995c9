"""Outcomes ingested durably through Ray Serve, beside a bare-insert floor, on SQLite and PostgreSQL.

For each database (a SQLite file; a fresh schema of PostgreSQL at
127.0.0.1:5432, database ``test``) one local Ray serves two applications:

* Flywheel as deployed (``build_flywheel_app``: ingress with bearer tokens,
  router, sim agents, the learner), its ledger on that database;
* the floor: a bare FastAPI deployment that parses the same request body and
  inserts its rows into the same ``outcomes`` table (its own copy of the
  schema) with one SQLAlchemy Core ``executemany`` per request, in one
  transaction per request: no auth, no validation, no dedup, no run join.

Runs first: ``runs_per_s`` is measured through the real path (16 clients POST
/v1/workflows/ticket_triage/runs for ``--runs-seconds``); the outcomes then
refer to runs written directly through ``Ledger.insert_new_runs`` (for speed:
one run per ``--runs-per-phase`` outcome, each with an agent step whose cost
and latency the reward falls back to). Then rounds alternate floor and
Flywheel, 16 clients posting batches of 100 new events each, for
``--seconds`` each; the figures are medians over rounds. After the rounds the
stored outcomes are counted against what was acknowledged as new.

    python benchmarks/ingest.py [--rounds 2] [--seconds 8] [--databases sqlite postgres]

Writes benchmarks/results/ingest.json.
"""


import argparse
import http.client
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = "ticket_triage"
PG = "127.0.0.1:5432/test"
PG_USERS = ("postgres", "", "root")
RUN_INPUT = {"text": "My invoice shows a double charge, please refund", "product": "billing",
             "customer_tier": "pro", "channel": "email"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{path}: HTTP {resp.status}: {data[:300]!r}")
    return json.loads(data) if data else {}


def hammer(port: int, path: str, bodies, clients: int, seconds: float, headers: dict[str, str]) -> tuple[float, list]:
    """`clients` threads POST `bodies(i, k)` for `seconds`; (requests/s, responses)."""
    counts, replies, errors = [0] * clients, [[] for _ in range(clients)], []
    barrier, stop_at = threading.Barrier(clients + 1), [0.0]

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            replies[i].append(post(conn, path, bodies(i, -1), headers))  # connect before the clock
            barrier.wait()
            k = 0
            while time.perf_counter() < stop_at[0]:
                replies[i].append(post(conn, path, bodies(i, k), headers))
                counts[i] += 1
                k += 1
        except BaseException as e:  # reported after the phase
            errors.append(e)
            barrier.abort()  # a client that failed before the start must not stall the others
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds + 0.05
    t0 = time.perf_counter()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} client errors, first: {errors[0]!r}")
    return sum(counts) / elapsed, [r for rs in replies for r in rs]


class Database:
    """One benchmark database: a SQLite folder, or a PostgreSQL schema per app, dropped afterwards."""

    def __init__(self, kind: str, folder: str):
        self.kind, self.folder, self.schemas = kind, folder, []
        self.pg_user = self._pg_user() if kind == "postgres" else None

    @staticmethod
    def _pg_user() -> str:
        from sqlalchemy import create_engine, text

        for user in PG_USERS:
            engine = create_engine(f"postgresql+psycopg://{user + '@' if user else ''}{PG}")
            try:
                with engine.connect() as c:
                    c.execute(text("SELECT 1"))
                return user
            except Exception:  # noqa: BLE001 - try the next user
                continue
            finally:
                engine.dispose()
        raise RuntimeError(f"PostgreSQL not reachable at {PG}")

    def _base(self) -> str:
        return f"postgresql+psycopg://{self.pg_user + '@' if self.pg_user else ''}{PG}"

    def url(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.folder}/{name}.db"
        from sqlalchemy import create_engine, text

        schema = f"fw_bench_{name}_{uuid.uuid4().hex[:8]}"
        engine = create_engine(self._base(), isolation_level="AUTOCOMMIT")
        with engine.connect() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        self.schemas.append(schema)
        return f"{self._base()}?options=-csearch_path%3D{schema}"

    def drop(self) -> None:
        if not self.schemas:
            return
        from sqlalchemy import create_engine, text

        engine = create_engine(self._base(), isolation_level="AUTOCOMMIT")
        with engine.connect() as c:
            for schema in self.schemas:
                c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def make_runs(url: str, n: int, prefix: str) -> list[str]:
    """`n` completed runs of WORKFLOW with an agent step, written through the Ledger; their ids."""
    from flywheel.ledger import Ledger
    from flywheel.ledger.records import RunRecord, StepRecord

    ledger = Ledger(url)
    ledger.upgrade()
    now = time.time()
    ids = [f"{prefix}{i:08d}" for i in range(n)]
    try:
        for start in range(0, n, 2000):
            ledger.insert_new_runs([
                RunRecord(run_id=r, workflow=WORKFLOW, status="completed", input=RUN_INPUT,
                          answer={"label": "billing"}, config_version="v0", created_at=now, updated_at=now,
                          steps=[StepRecord(r, 0, "answer", "agent", "done",
                                            {"cost": 0.002, "latency_s": 0.4, "confidence": 0.9}, now, now)])
                for r in ids[start:start + 2000]
            ])
    finally:
        ledger.dispose()
    return ids


def floor_deployment(url: str):
    """The floor: parse the body, one executemany of the rows into `outcomes`, commit, reply."""
    from ray import serve

    def build() -> FastAPI:
        import asyncio
        import threading as th

        from flywheel.ledger.engine import create_ledger_engine, write_transaction
        from flywheel.ledger.tables import outcomes

        engine = create_ledger_engine(url)
        lock = th.Lock() if engine.dialect.name == "sqlite" else None  # as the Ledger queues SQLite writers
        api = FastAPI()

        def insert(rows: list[dict[str, Any]]) -> None:
            if lock is not None:
                lock.acquire()
            try:
                with write_transaction(engine) as c:
                    c.execute(outcomes.insert(), rows)
            finally:
                if lock is not None:
                    lock.release()

        @api.post("/")
        async def ingest(request: Request):
            events = (await request.json())["events"]
            now = time.time()
            rows = [{"event_id": e["event_id"], "run_id": e["run_id"], "workflow": WORKFLOW,
                     "success": e.get("success"), "quality": e.get("quality"), "cost": 0.002,
                     "latency_s": 0.4, "human_override": False, "source": e.get("source", "service"),
                     "reward": e.get("quality") or 0.0, "occurred_at": None, "received_at": now}
                    for e in events]
            await asyncio.to_thread(insert, rows)
            return {"new": len(rows), "duplicate": 0, "rejected": []}

        return api

    @serve.deployment(name="floor", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.1})
    @serve.ingress(build)
    class Floor:
        pass

    return Floor.bind()


def deploy(db: Database, tmp: str, port: int) -> dict[str, Any]:
    """Deploy Flywheel and the floor on `db`; their paths, urls and the service token."""
    from ray import serve

    from flywheel.ledger import Ledger
    from flywheel.registry.mlflow_registry import MlflowRegistry
    from flywheel.services.app import build_flywheel_app
    from flywheel.services.settings import load_settings

    serve.start(http_options={"host": "127.0.0.1", "port": port})
    real_url, floor_url = db.url("flywheel"), db.url("floor")
    base = load_settings(ROOT / "configs/app.yaml")
    settings = base.model_copy(update={
        "database_url": real_url,
        "simulator": base.simulator.model_copy(update={"latency_scale": 0.0}),
        # the clients post far faster than one token may (the rate limit is not what is measured)
        "limits": base.limits.model_copy(update={"per_token": "1000000 per second"}),
        "learning": base.learning.model_copy(update={
            "mlflow_tracking_uri": f"sqlite:///{tmp}/mlflow.db", "mlflow_artifacts": f"{tmp}/mlartifacts"}),
    })
    learning = settings.learning  # made here: replicas migrating one new MLflow store at once collide
    MlflowRegistry(learning.mlflow_tracking_uri, learning.mlflow_artifacts)
    ledger = Ledger(real_url)
    ledger.upgrade()
    _, token = ledger.create_token("service", name="bench-ingest", created_by="benchmark")
    ledger.dispose()
    floor_ledger = Ledger(floor_url)
    floor_ledger.upgrade()
    floor_ledger.dispose()
    serve.run(build_flywheel_app(settings), name="flywheel", route_prefix="/")
    serve.run(floor_deployment(floor_url), name="floor", route_prefix="/floor")
    return {"real_url": real_url, "floor_url": floor_url, "token": token}


def outcome_bodies(run_ids: list[str], tag: str, batch: int):
    """bodies(i, k): client i's k-th batch of `batch` new events, on the runs in turn."""
    def bodies(i: int, k: int) -> bytes:
        events = []
        for j in range(batch):
            n = (i * 1_000_003 + (k + 1) * batch + j) % len(run_ids)
            events.append({"event_id": f"{tag}-{i}-{k}-{j}", "run_id": run_ids[n],
                           "success": j % 3 != 0, "quality": (j % 10) / 10, "source": "bench"})
        return json.dumps({"events": events}).encode()
    return bodies


def count_outcomes(url: str, prefix: str) -> int:
    from sqlalchemy import func, select

    from flywheel.ledger.engine import create_ledger_engine
    from flywheel.ledger.tables import outcomes

    engine = create_ledger_engine(url)
    with engine.connect() as c:
        n = c.execute(select(func.count()).where(outcomes.c.event_id.like(f"{prefix}%"))).scalar_one()
    engine.dispose()
    return int(n)


def bench_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    import ray
    from ray import serve

    ray.init(include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    port = free_port()
    res: dict[str, list[float]] = {"real": [], "floor": []}
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(kind, tmp)
        try:
            d = deploy(db, tmp, port)
            headers = {"content-type": "application/json", "authorization": f"Bearer {d['token']}"}
            run_body = json.dumps({"input": RUN_INPUT}).encode()
            runs_rps, _ = hammer(port, f"/v1/workflows/{WORKFLOW}/runs", lambda i, k: run_body,
                                 args.clients, args.runs_seconds, headers)
            real_runs = make_runs(d["real_url"], args.runs_per_phase, "run-")
            floor_runs = make_runs(d["floor_url"], args.runs_per_phase, "run-")
            acked = {"real": 0, "floor": 0}
            for r in range(args.rounds):
                for name, path, url_runs in (("floor", "/floor/", floor_runs), ("real", "/v1/outcomes", real_runs)):
                    bodies = outcome_bodies(url_runs, f"ev{r}", args.batch)
                    rps, replies = hammer(port, path, bodies, args.clients, args.seconds, headers)
                    if any(x["rejected"] or x["duplicate"] for x in replies):
                        raise RuntimeError(f"{name}: events rejected or duplicate: {replies[0]}")
                    acked[name] += sum(x["new"] for x in replies)
                    res[name].append(rps * args.batch)
                print(f"{kind} round {r + 1}: floor {res['floor'][-1]:.0f}/s, "
                      f"flywheel {res['real'][-1]:.0f} outcomes/s", file=sys.stderr)
            stored = {"real": count_outcomes(d["real_url"], "ev"), "floor": count_outcomes(d["floor_url"], "ev")}
        finally:
            serve.shutdown()
            ray.shutdown()
            db.drop()
    if stored != acked:
        raise RuntimeError(f"{kind}: acknowledged {acked} but stored {stored}")
    real, floor = statistics.median(res["real"]), statistics.median(res["floor"])
    return {"outcomes_per_s": round(real, 1), "floor_outcomes_per_s": round(floor, 1),
            "ratio_to_floor": round(real / floor, 3), "runs_per_s": round(runs_rps, 1),
            "acknowledged_new": acked["real"], "stored": stored["real"], "raw": res}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--databases", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each outcomes phase")
    ap.add_argument("--runs-seconds", type=float, default=4.0, help="length of the POST runs phase")
    ap.add_argument("--runs-per-phase", type=int, default=20_000, help="runs written through the Ledger")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/ingest.json"))
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.chdir(ROOT)
    load = os.getloadavg()[0]
    out: dict[str, Any] = {}
    for kind in args.databases:
        for attempt in range(3):  # another Ray on this machine may take the free port first
            try:
                out[kind] = bench_database(kind, args)
                break
            except RuntimeError as e:
                if "Failed to bind" not in str(e) or attempt == 2:
                    raise
                print(f"{kind}: the port was taken, again on another", file=sys.stderr)
    print(f"\n{'database':<10} {'outcomes/s':>11} {'floor/s':>9} {'ratio':>6} {'runs/s':>7}")
    for kind, r in out.items():
        print(f"{kind:<10} {r['outcomes_per_s']:>11.0f} {r['floor_outcomes_per_s']:>9.0f} "
              f"{r['ratio_to_floor']:>6.2f} {r['runs_per_s']:>7.0f}")
    print("targets: >= 10000 outcomes/s, >= 0.8 of the floor")
    out |= {"targets": {"outcomes_per_s": ">= 10000", "ratio_to_floor": ">= 0.8"},
            "clients": args.clients, "batch": args.batch, "seconds": args.seconds, "rounds": args.rounds,
            "runs_source": "runs_per_s: POST runs; outcomes' runs: Ledger.insert_new_runs",
            "cpus": os.cpu_count(), "loadavg_1m_at_start": round(load, 2)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
