"""What the whole routed path costs over a bare Serve deployment, measured in one run.

Applications on one local Ray: a bare FastAPI echo deployment; Flywheel
(ingress with local routing, a sim agent deployment answering at once, the
SQLite ledger with group commit); and Flywheel with its agents placed in the
ingress replica (`placement: ingress`, one hop fewer). For each: p50/p99 of sequential requests, and
requests/s with 16 concurrent clients. Rounds alternate between the two so
machine noise hits both alike; the figures are the medians over rounds. Every
request carries a service token (made in each app's ledger), the echo's too.

    python benchmarks/serve_overhead.py [--rounds 3] [--requests 300] [--seconds 6]
    RAY_SERVE_THROUGHPUT_OPTIMIZED=1 python benchmarks/serve_overhead.py

Writes benchmarks/results/serve_overhead.json.
"""


import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from fastapi import FastAPI, Request

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = {
    "input": {
        "text": "My invoice shows a double charge for March, please refund one of them",
        "product": "billing",
        "customer_tier": "pro",
        "channel": "email",
    }
}


def _conn(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def _post(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]) -> None:
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{path}: HTTP {resp.status}: {data[:300]!r}")


def _bodies(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        p = json.loads(json.dumps(PAYLOAD))
        p["input"]["text"] += f" (ticket {i})"
        out.append(json.dumps(p).encode())
    return out


def sequential(port: int, path: str, n: int, headers: dict[str, str], warmup: int = 30) -> list[float]:
    bodies = _bodies(n + warmup)
    conn = _conn(port)
    for b in bodies[:warmup]:
        _post(conn, path, b, headers)
    lat = []
    for b in bodies[warmup:]:
        t = time.perf_counter()
        _post(conn, path, b, headers)
        lat.append((time.perf_counter() - t) * 1000)
    conn.close()
    return lat


def concurrent(port: int, path: str, clients: int, seconds: float, headers: dict[str, str]) -> float:
    bodies = _bodies(2000)
    counts = [0] * clients
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(i: int) -> None:
        conn = _conn(port)
        _post(conn, path, bodies[i], headers)  # connect before the clock starts
        start.wait()
        k = i
        try:
            while time.perf_counter() < stop_at[0]:
                _post(conn, path, bodies[k % len(bodies)], headers)
                counts[i] += 1
                k += clients
        except BaseException as e:  # reported after the run
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds + 0.05
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} client errors, first: {errors[0]!r}")
    return sum(counts) / elapsed


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def service_token(urls: list[str]) -> str:
    """One service token, stored in each of the ledgers at ``urls``."""
    from flywheel.ledger import Ledger

    secret = None
    for url in dict.fromkeys(urls):  # one ledger when $FLYWHEEL_DATABASE_URL names it
        ledger = Ledger(url)
        try:
            ledger.upgrade()
            _, secret = ledger.create_token("service", name="serve-overhead", created_by="benchmark", secret=secret)
        finally:
            ledger.dispose()
    assert secret is not None
    return secret


def deploy(port: int, db_dir: str) -> str:
    """Deploy the three applications; returns the service token they accept."""
    from ray import serve

    from flywheel.services.app import build_flywheel_app
    from flywheel.services.settings import load_settings

    serve.start(http_options={"host": "127.0.0.1", "port": port})

    def echo_api() -> FastAPI:  # built on the replica, like Flywheel's ingress
        api = FastAPI()

        @api.post("/")
        async def echo(request: Request):
            return await request.json()

        return api

    @serve.deployment(name="echo", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.1})
    @serve.ingress(echo_api)
    class Echo:
        pass

    serve.run(Echo.bind(), name="echo", route_prefix="/echo")

    base = load_settings(ROOT / "configs/app.yaml")
    settings = base.model_copy(
        update={
            "database_url": f"sqlite:///{db_dir}/ledger.db",
            "simulator": base.simulator.model_copy(update={"latency_scale": 0.0}),
            "learning": base.learning.model_copy(
                update={"mlflow_tracking_uri": f"sqlite:///{db_dir}/mlflow.db",
                        "mlflow_artifacts": f"{db_dir}/mlartifacts"}
            ),
        }
    )
    os.chdir(ROOT)
    serve.run(build_flywheel_app(settings), name="flywheel", route_prefix="/")
    # The same app with the agents placed in the ingress replica: one hop fewer.
    inline = settings.model_copy(
        update={
            "database_url": f"sqlite:///{db_dir}/ledger_inline.db",
            "agents": {
                n: a.model_copy(update={"placement": "ingress"}) for n, a in settings.agents.items()
            },
        }
    )
    serve.run(build_flywheel_app(inline), name="flywheel_inline", route_prefix="/inline")
    return service_token([settings.resolved_database_url(), inline.resolved_database_url()])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=300, help="sequential requests per round")
    ap.add_argument("--seconds", type=float, default=6.0, help="length of each concurrent phase")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/serve_overhead.json"))
    args = ap.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray import serve

    ray.init(include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    paths = {
        "echo": "/echo/",
        "routed": "/v1/workflows/ticket_triage/runs",
        "inline": "/inline/v1/workflows/ticket_triage/runs",
    }
    res: dict[str, dict[str, list[float]]] = {k: {"p50": [], "p99": [], "rps": []} for k in paths}
    try:
        with tempfile.TemporaryDirectory() as db_dir:
            token = deploy(args.port, db_dir)
            headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
            for r in range(args.rounds):
                for name, path in paths.items():
                    lat = sequential(args.port, path, args.requests, headers)
                    res[name]["p50"].append(statistics.median(lat))
                    res[name]["p99"].append(pct(lat, 0.99))
                for name, path in paths.items():
                    res[name]["rps"].append(concurrent(args.port, path, args.clients, args.seconds, headers))
                print(
                    f"round {r + 1}: "
                    + ", ".join(f"{k} p50 {res[k]['p50'][-1]:.2f} ms {res[k]['rps'][-1]:.0f} req/s" for k in paths),
                    file=sys.stderr,
                )
    finally:
        serve.shutdown()
        ray.shutdown()

    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in res.items()}
    out = {
        "echo_p50_ms": round(med["echo"]["p50"], 3),
        "routed_p50_ms": round(med["routed"]["p50"], 3),
        "p50_ratio": round(med["routed"]["p50"] / med["echo"]["p50"], 3),
        "echo_p99_ms": round(med["echo"]["p99"], 3),
        "routed_p99_ms": round(med["routed"]["p99"], 3),
        "echo_rps": round(med["echo"]["rps"], 1),
        "routed_rps": round(med["routed"]["rps"], 1),
        "rps_ratio": round(med["routed"]["rps"] / med["echo"]["rps"], 3),
        "inline_p50_ms": round(med["inline"]["p50"], 3),
        "inline_p50_ratio": round(med["inline"]["p50"] / med["echo"]["p50"], 3),
        "inline_rps": round(med["inline"]["rps"], 1),
        "inline_rps_ratio": round(med["inline"]["rps"] / med["echo"]["rps"], 3),
        "targets": {"p50_ratio": "<= 1.3", "rps_ratio": ">= 0.8"},
        "rounds": args.rounds,
        "sequential_requests": args.requests,
        "concurrent_clients": args.clients,
        "concurrent_seconds": args.seconds,
        "throughput_optimized": os.environ.get("RAY_SERVE_THROUGHPUT_OPTIMIZED", "0"),
        "cpus": os.cpu_count(),
        "raw": res,
    }
    print(f"\n{'path':<8} {'p50 ms':>8} {'p99 ms':>8} {'req/s @' + str(args.clients):>12}")
    for k in paths:
        print(f"{k:<8} {med[k]['p50']:>8.2f} {med[k]['p99']:>8.2f} {med[k]['rps']:>12.0f}")
    print(f"routed/echo: p50 {out['p50_ratio']:.2f} (target <= 1.3), req/s {out['rps_ratio']:.2f} (target >= 0.8)")
    print(f"inline/echo: p50 {out['inline_p50_ratio']:.2f}, req/s {out['inline_rps_ratio']:.2f}  (agents in the ingress replica)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
