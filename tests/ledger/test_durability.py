"""Durability: SQLite's synchronous level is what the settings say, on every connection; and an
outcome the API acknowledged survives the server being killed (SIGKILL), stored exactly once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from flywheel.ledger import Ledger
from flywheel.services.settings import load_settings
from flywheel.workflows.engine import FAILURE_EVENT_PREFIX

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("level,code", [("NORMAL", 1), ("FULL", 2), ("EXTRA", 3)])
def test_the_synchronous_pragma_is_in_force_on_every_connection(tmp_path, level, code):
    settings = load_settings("configs/app.yaml").model_copy(
        update={"database_url": f"sqlite:///{tmp_path}/l.db", "ledger_synchronous": level})
    ledger = settings.open_ledger()
    ledger.upgrade()
    engine = ledger.engine
    connections = [engine.connect() for _ in range(3)]  # distinct pool connections
    try:
        assert [c.exec_driver_sql("PRAGMA synchronous").scalar() for c in connections] == [code] * 3
        assert connections[0].exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        for c in connections:
            c.close()
        ledger.dispose()


def test_the_default_is_normal_and_a_bad_level_is_refused(tmp_path):
    assert load_settings("configs/app.yaml").ledger_synchronous == "NORMAL"
    with pytest.raises(ValueError, match="synchronous"):
        Ledger(f"sqlite:///{tmp_path}/l.db", synchronous="SOMETIMES")  # type: ignore[arg-type]


SERVER = textwrap.dedent("""
    import sys, uvicorn
    from flywheel.cli.local_server import local_api
    from flywheel.services.settings import load_settings
    settings = load_settings("configs/app.yaml").model_copy(update={"database_url": sys.argv[1]})
    uvicorn.run(local_api(settings), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict, token: str, timeout: float = 5.0) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read())


def _serve(db_url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, db_url, str(port)], cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1)
            return proc
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not start")


def _posted(ledger: Ledger) -> list[str]:
    """The stored outcomes' event ids, less the service's own (a failed run's `failure:` outcome)."""
    stored = [o.event_id for o in ledger.outcomes_after(0, limit=10**7)]
    return [e for e in stored if not e.startswith(FAILURE_EVENT_PREFIX)]


def test_acknowledged_outcomes_survive_kill_9_exactly_once(tmp_path):
    db_url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger(db_url)
    ledger.upgrade()
    _, token = ledger.create_token("service", name="kill-test", created_by="tests")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(db_url, port)
    try:
        ticket = {"text": "refund my double charge", "product": "billing", "customer_tier": "pro", "channel": "chat"}
        runs = [_post(f"{base}/v1/workflows/ticket_triage/runs", {"input": ticket}, token)[1]["run_id"]
                for _ in range(4)]
        acked: list[str] = []
        sent: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def poster(k: int) -> None:
            for b in range(10_000):
                if stop.is_set():
                    return
                ids = [f"t{k}-b{b}-e{i}" for i in range(20)]
                with lock:
                    sent.extend(ids)
                events = [{"event_id": e, "run_id": runs[i % len(runs)], "success": True} for i, e in enumerate(ids)]
                try:
                    status, report = _post(f"{base}/v1/outcomes", {"events": events}, token)
                except (OSError, urllib.error.URLError):
                    return  # the server is gone: this batch was not acknowledged
                if status == 200 and report["new"] == len(ids):
                    with lock:
                        acked.extend(ids)

        threads = [threading.Thread(target=poster, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(acked) < 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.send_signal(signal.SIGKILL)  # mid-stream: posters are still sending
        server.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
    assert len(acked) >= 200, "too few batches acknowledged before the kill"
    stored = _posted(Ledger(db_url))
    assert len(stored) == len(set(stored))  # exactly once
    assert set(acked) <= set(stored)  # every acknowledged event is stored
    assert set(stored) <= set(sent)
    # after a restart, a re-post of everything sent: the acknowledged ones are all duplicates
    server = _serve(db_url, port)
    try:
        status, report = _post(f"{base}/v1/outcomes", {"events": [
            {"event_id": e, "run_id": runs[0], "success": True} for e in acked]}, token, timeout=30)
        assert status == 200 and report == {"new": 0, "duplicate": len(acked), "rejected": []}
        status, report = _post(f"{base}/v1/outcomes", {"events": [
            {"event_id": e, "run_id": runs[0], "success": True} for e in sent]}, token, timeout=30)
        assert report["duplicate"] == len(stored) and report["new"] == len(set(sent) - set(stored))
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
    stored_after = _posted(Ledger(db_url))
    assert len(stored_after) == len(set(stored_after)) == len(set(sent))
