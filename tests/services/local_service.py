"""The local app for tests: its settings on a temporary folder, tokens for roles, and serving it
for real (uvicorn in a thread, a free port) for clients outside the test process (a browser,
a Prometheus server)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from flywheel.ledger import Ledger
from flywheel.services.settings import AppSettings, load_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app: Any, timeout_s: float = 120.0) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 until the block ends; yields its `host:port`."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + timeout_s
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "the service did not start"
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def local_settings(root: Path, **learning: Any) -> AppSettings:
    """configs/app.yaml with its ledger and MLflow under `root`, instant simulated agents, and
    `learning` settings changed."""
    base = load_settings("configs/app.yaml")
    return base.model_copy(update={
        "database_url": f"sqlite:///{root}/ledger.db",
        "simulator": base.simulator.model_copy(update={"latency_scale": 0.0}),
        "learning": base.learning.model_copy(update={
            "mlflow_tracking_uri": f"sqlite:///{root}/mlflow.db", "mlflow_artifacts": str(root / "art"), **learning}),
    })


def role_headers(settings: AppSettings, roles: tuple[str, ...], prefix: str) -> dict[str, dict[str, str]]:
    """{role: Authorization header} with a fresh token of each role in the settings' (migrated) ledger."""
    ledger = Ledger(settings.resolved_database_url())
    ledger.upgrade()
    try:
        return {role: {"Authorization": f"Bearer {ledger.create_token(role, name=f'{prefix}-{role}', created_by='tests')[1]}"}
                for role in roles}
    finally:
        ledger.dispose()
