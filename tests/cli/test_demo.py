"""The demo driver against the real API over HTTP (uvicorn in a thread, agents in-process)."""

import asyncio
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.cli.demo import DemoDriver
from flywheel.cli.local_server import local_api
from flywheel.services.settings import load_settings
from flywheel.ledger import Ledger


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, service token) of the API on uvicorn over a fresh ledger."""
    root = tmp_path_factory.mktemp("demo")
    settings = load_settings("configs/app.yaml")
    learning = settings.learning.model_copy(update={
        "mlflow_tracking_uri": f"sqlite:///{root}/mlflow.db", "mlflow_artifacts": str(root / "art"),
        "publish_every_outcomes": 50, "publish_every_s": 0.5, "poll_s": 0.1})
    settings = settings.model_copy(
        update={"database_url": f"sqlite:///{root}/ledger.db", "learning": learning,
                "simulator": settings.simulator.model_copy(update={"latency_scale": 0.0})})
    ledger = Ledger(settings.resolved_database_url())
    ledger.upgrade()
    _, token = ledger.create_token("service", name="demo-tests", created_by="tests")
    ledger.dispose()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(local_api(settings, learning=True), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", token
    server.should_exit = True
    thread.join(10)


def test_demo_drives_runs_reviews_and_outcomes(served):
    url, token = served
    headers = {"Authorization": f"Bearer {token}"}
    settings = load_settings("configs/app.yaml")
    driver = DemoDriver(url, settings.simulator, seed=5, token=token)
    summary = asyncio.run(driver.run(300, concurrency=4))
    assert summary.runs == 300
    assert summary.reviewed > 0  # some answers fell below the gate
    assert summary.outcomes_sent > 0
    # every event sent is accounted for; the world sends some twice, never for unknown runs
    assert summary.outcomes_new + summary.outcomes_duplicate == summary.outcomes_sent
    assert summary.outcomes_duplicate > 0 and summary.outcomes_rejected == 0
    stats = [httpx.get(f"{url}/v1/workflows/{wf}/stats", headers=headers).json() for wf in ("ticket_triage", "report_generation")]
    assert sum(s["runs"] for s in stats) == 300
    assert all(s["mean_reward"] is not None for s in stats)
    # the in-process learning loop published learned versions into the live runtime
    deadline = time.time() + 10
    while time.time() < deadline:
        versions = httpx.get(f"{url}/v1/health").json()["config_versions"]
        if all("@v" in v for v in versions.values()):
            break
        time.sleep(0.2)
    assert all("@v" in v for v in versions.values()), versions


def test_runs_show_prints_a_run(served):
    url, token = served
    run = httpx.post(f"{url}/v1/workflows/ticket_triage/runs", headers={"Authorization": f"Bearer {token}"},
                     json={"input": {"text": "parcel never arrived", "product": "shipping",
                                     "customer_tier": "free", "channel": "chat"}}).json()
    result = CliRunner().invoke(app, ["runs", "show", run["run_id"], "--url", url, "--token", token])
    assert result.exit_code == 0, result.output
    assert run["run_id"] in result.output and '"kind": "route"' in result.output
    missing = CliRunner().invoke(app, ["runs", "show", "nope", "--url", url], env={"FLYWHEEL_TOKEN": token})
    assert missing.exit_code == 1 and "404" in missing.output
    refused = CliRunner().invoke(app, ["runs", "show", run["run_id"], "--url", url], env={"FLYWHEEL_TOKEN": ""})
    assert refused.exit_code == 1 and "401" in refused.output
