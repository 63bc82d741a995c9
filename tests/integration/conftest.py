"""One Ray, and one Flywheel app on Serve, for the whole integration session."""

from __future__ import annotations

import os
import socket

import httpx
import pytest

from flywheel.services.settings import load_settings


PUBLISH_EVERY_OUTCOMES = 50
PUBLISH_EVERY_S = 1.0
METRICS_REPORT_MS = 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_session():
    import ray
    from ray import serve

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # logical CPUs enough for a vLLM CPU engine (2) and Serve LLM's ingress beside the app (test_vllm.py)
    # metrics reach Ray's export every second (default 10 s): test_ray_metrics.py reads them there
    ray.init(num_cpus=max(8, os.cpu_count() or 1), include_dashboard=False, logging_level="WARNING",
             log_to_driver=False, _system_config={"metrics_report_interval_ms": METRICS_REPORT_MS})
    yield
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def serve_settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    base = load_settings("configs/app.yaml")
    serve_cfg = base.serve.model_copy(update={"port": _free_port()})
    sim = base.simulator.model_copy(update={"latency_scale": 0.0})
    learning = base.learning.model_copy(
        update={
            "mlflow_tracking_uri": f"sqlite:///{root}/mlflow.db",
            "mlflow_artifacts": str(root / "mlartifacts"),
            "publish_every_outcomes": PUBLISH_EVERY_OUTCOMES,
            "publish_every_s": PUBLISH_EVERY_S,
            "poll_s": 0.2,
        }
    )
    # The shipped policy, less the step limit on routing weights (bandit evidence): the tests roll
    # back to older versions, and the learner's next versions must still go live by themselves.
    (root / "policies.yaml").write_text(
        "default:\n  parameters:\n"
        "    thresholds.*: {min: 0.0, max: 1.0, max_step: 0.1, over_step: clip}\n"
        "    routing.exploration: {min: 0.0, max: 0.5}\n"
        "    routing.temperature: {autonomy: review}\n"
        "    cost_weight: {autonomy: frozen}\n"
    )
    governance = base.governance.model_copy(update={"policies": str(root / "policies.yaml")})
    return base.model_copy(
        update={"database_url": f"sqlite:///{root}/ledger.db", "serve": serve_cfg, "simulator": sim,
                "learning": learning, "governance": governance}
    )


@pytest.fixture(scope="session")
def flywheel_url(ray_session, serve_settings):
    from flywheel.services.app import run_app

    run_app(serve_settings)
    url = f"http://{serve_settings.serve.host}:{serve_settings.serve.port}"
    with httpx.Client(base_url=url, timeout=30) as c:
        assert c.get("/v1/health").status_code == 200
    return url


@pytest.fixture(scope="session")
def service_token(serve_settings):
    """A service token, stored straight in the app's ledger."""
    from flywheel.ledger import Ledger

    ledger = Ledger(serve_settings.resolved_database_url())
    ledger.upgrade()
    _, token = ledger.create_token("service", name="integration-tests", created_by="tests")
    ledger.dispose()
    return token


@pytest.fixture
def client(flywheel_url, service_token):
    with httpx.Client(base_url=flywheel_url, timeout=30,
                      headers={"Authorization": f"Bearer {service_token}"}) as c:
        yield c
