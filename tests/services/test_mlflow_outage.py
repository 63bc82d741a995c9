"""MLflow down and back, with a real `mlflow server`: serving goes on with the last champion,
learners keep learning, versions wait in the ledger and arrive in order, operators get a clear error."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flywheel.registry.governor import Governor
from flywheel.registry.mlflow_registry import CHAMPION, MlflowRegistry, RegistryUnavailable
from flywheel.registry.policy import load_policies
from flywheel.learners.config_book import ConfigBook
from flywheel.services.governance import ChampionSync
from flywheel.learners.loop import LearningLoop
from flywheel.services.agents.local import LocalAgents
from flywheel.services.runtime import Runtime
from flywheel.services.settings import load_settings
from tests.learners.test_learning_loop import _stream

WF = "ticket_triage"


class MlflowServer:
    """`mlflow server` on a SQLite store, started and killed like a real outage."""

    def __init__(self, root: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.root = root
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        mlflow = str(Path(sys.executable).with_name("mlflow"))
        self.proc = subprocess.Popen(
            [mlflow, "server", "--backend-store-uri", f"sqlite:///{self.root}/store.db",
             "--default-artifact-root", str(self.root / "art"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        )
        deadline = time.time() + 180  # a loaded 2-core machine has taken over 60 s
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.uri}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("mlflow server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def server(tmp_path):
    s = MlflowServer(tmp_path / "mlflow")
    s.root.mkdir()
    s.start()
    yield s
    s.stop()


def test_mlflow_down_and_back(server, tmp_path):
    settings = load_settings("configs/app.yaml")
    settings = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/ledger.db",
                                           "simulator": settings.simulator.model_copy(update={"latency_scale": 0.0})})
    runtime = Runtime.from_settings(settings, LocalAgents.from_settings(settings))
    asyncio.run(_stream(runtime, 600))
    registry = MlflowRegistry(server.uri)
    governor = Governor(registry, runtime.ledger, load_policies("configs/policies.yaml"))
    loop = LearningLoop(runtime.specs, runtime.ledger, registry, governor=governor, n_bits=12,
                        publish_every_outcomes=10**9, publish_every_s=10**9)
    sync = ChampionSync(registry)

    loop.step(limit=200)
    loop.publish_due(force=True)
    assert [o.status for o in loop.publish_pending()] == ["auto", "auto"]
    live = sync.fetch(WF, None)
    runtime.configs.apply(*live)
    assert runtime.configs.live(WF).version == f"{WF}@v1"

    server.stop()  # ---- MLflow is down
    learned_before = loop.learners[WF].n_updates
    for _ in range(2):  # learners keep learning; each version waits in the ledger
        assert loop.step(limit=150) > 0
        loop.publish_due(force=True)
        with pytest.raises(RegistryUnavailable):
            loop.publish_pending()
    assert loop.learners[WF].n_updates > learned_before
    waiting = [w for w in runtime.ledger.unpublished_versions() if w.workflow == WF]
    assert len(waiting) == 2 and waiting[0].position < waiting[1].position
    assert sync.fetch(WF, runtime.configs.live(WF).version) is None  # routing stays on v1
    live = runtime.configs.live(WF)  # what the next run decides with
    assert live.version == f"{WF}@v1"
    assert live.policy.decide({"prompt": "refund please"}, key="r1", arms=runtime.specs[WF].arms).propensity > 0
    audited = len(runtime.ledger.audit_entries())
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        governor.pin(WF, 1, actor="olga", reason="during the outage")
    with pytest.raises(RegistryUnavailable):
        governor.rollback(WF, to=1, actor="olga", reason="during the outage")
    assert time.monotonic() - started < 30  # a clear error in seconds, not minutes of retries
    assert len(runtime.ledger.audit_entries()) == audited  # nothing half-applied

    server.start()  # ---- MLflow is back
    done = loop.publish_pending()
    mine = [o for o in done if o.workflow == WF]
    assert [o.number for o in mine] == [2, 3] and all(o.status == "auto" for o in mine)
    assert registry.alias(WF, CHAMPION) == 3
    assert registry.version(WF, 3).position == waiting[1].position  # published in order, nothing lost
    assert runtime.ledger.unpublished_versions() == []
    config, state = sync.fetch(WF, runtime.configs.live(WF).version)
    assert ConfigBook([]).apply(config, state) and config.version == f"{WF}@v3"
    assert runtime.ledger.verify_audit() == []
