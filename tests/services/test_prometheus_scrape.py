"""A real Prometheus server (Debian's `prometheus`, installed by `make prometheus`) scrapes the
running local service every second; its query API shows the values move as runs and outcomes
are posted. A missing binary fails the test: `make test` installs it."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from flywheel.cli.local_server import local_api
from tests.services.local_service import free_port, local_settings, role_headers, serving

WF = "ticket_triage"
TICKET = {"text": "my parcel never arrived", "product": "shipping", "customer_tier": "pro", "channel": "chat"}


class PrometheusServer:
    """`prometheus` with a generated config: one job scraping `target` every second with a token."""

    def __init__(self, root: Path, target: str, token: str):
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("no `prometheus` on PATH: run `make prometheus` as root (make test does)", pytrace=False)
        self.url = f"http://127.0.0.1:{free_port()}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "flywheel", "metrics_path": "/metrics", "scrape_timeout": "1s",
                "authorization": {"type": "Bearer", "credentials": token},
                "static_configs": [{"targets": [target]}],
            }],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(root / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            assert self.proc.poll() is None, f"prometheus exited: {Path(self.log.name).read_text()[-2000:]}"
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("prometheus did not get ready")

    def query(self, promql: str) -> float | None:
        """The value of an instant query that sums to one series; None when it has none."""
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", body
        result = body["data"]["result"]
        assert len(result) <= 1, f"{promql}: {len(result)} series, sum them"
        return float(result[0]["value"][1]) if result else None

    def until(self, promql: str, check, timeout_s: float = 60.0) -> float | None:
        """Query until `check(value)` holds (scrapes come every second); the last value."""
        deadline = time.time() + timeout_s
        value = self.query(promql)
        while not check(value) and time.time() < deadline:
            time.sleep(0.5)
            value = self.query(promql)
        return value

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


@pytest.fixture
def service(tmp_path) -> Iterator[tuple[str, dict[str, str]]]:
    """(url, {role: headers}) of the local service on uvicorn, learning and publishing quickly."""
    settings = local_settings(tmp_path, poll_s=0.05, publish_every_outcomes=5)
    headers = role_headers(settings, ("service", "operator"), "p")
    with serving(local_api(settings, learning=True)) as address:
        yield address, headers


@pytest.fixture
def prometheus(tmp_path, service) -> Iterator[PrometheusServer]:
    target, headers = service
    root = tmp_path / "prometheus"
    root.mkdir()
    scraper = headers["operator"]["Authorization"].removeprefix("Bearer ")  # any role's token may scrape
    server = PrometheusServer(root, target, scraper)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def latest(name: str, agg: str = "sum", **labels: str) -> str:
    """PromQL for `agg` of the series' last scraped values (a scrape that timed out on a busy
    machine marks the series stale for an instant query; a range ignores the markers)."""
    selector = ",".join(['job="flywheel"'] + [f'{k}="{v}"' for k, v in labels.items()])
    return f"{agg}(last_over_time({name}{{{selector}}}[10m]))"


def test_prometheus_scrapes_the_service_and_sees_the_loop_move(service, prometheus):
    target, h = service
    p = prometheus
    assert p.until('max_over_time(up{job="flywheel"}[10m])', lambda v: v == 1.0) == 1.0  # the token scrape works
    assert p.query(latest("flywheel_runs_started_total", workflow=WF)) is None  # nothing run yet

    with httpx.Client(base_url=f"http://{target}", headers=h["service"], timeout=30) as client:
        runs = [client.post(f"/v1/workflows/{WF}/runs", json={"input": {**TICKET, "text": f"parcel {i} lost"}}).json()
                for i in range(12)]
        done = [r for r in runs if r["status"] == "completed"]
        failed = [r for r in runs if r["status"] == "failed"]  # the simulator's agents fail now and then
        assert done, "the gate sent every run to a human"
        events = [{"event_id": f"e-{uuid.uuid4().hex}", "run_id": r["run_id"], "success": k % 4 != 0,
                   "quality": 0.9 if k % 4 else 0.2} for k, r in enumerate(done)]
        assert client.post("/v1/outcomes", json={"events": events}).status_code == 200
        r = client.post("/v1/outcomes", json={"events": events[:2] + [
            {"event_id": "e-unknown", "run_id": "no-such-run", "success": True}]})
        assert r.status_code == 200 and r.json()["duplicate"] == min(2, len(events))

    # the last counter the requests moved: once Prometheus has it, it has scraped them all
    assert p.until(latest("flywheel_outcomes_rejected_total", reason="unknown_run_id"), lambda v: v == 1) == 1
    assert p.query(latest("flywheel_runs_started_total", workflow=WF)) == 12
    assert p.query(latest("flywheel_runs_started_total", "count", workflow=WF)) == len(
        {(r["decision"]["arm"], r["decision"]["config_version"]) for r in runs})  # a series per arm and version
    assert p.query(latest("flywheel_runs_finished_total", workflow=WF, status="completed")) == len(done)
    assert (p.query(latest("flywheel_runs_finished_total", workflow=WF, status="failed")) or 0) == len(failed)
    stored = len(events) + len(failed)  # a failed run's outcome is the service's own
    assert p.query(latest("flywheel_outcomes_total", result="accepted")) == stored
    assert p.query(latest("flywheel_outcomes_total", result="duplicate")) == min(2, len(events))
    assert p.query(latest("flywheel_outcomes_total", result="rejected")) == 1
    assert p.query(latest("flywheel_reward_count", workflow=WF)) == stored
    mean = p.query(f'{latest("flywheel_reward_sum", workflow=WF)} / {latest("flywheel_reward_count", workflow=WF)}')
    assert mean is not None and 0 < mean < 0.9  # quality less cost and latency; some outcomes failed
    assert p.query(latest("flywheel_decision_seconds_count", workflow=WF)) == 12
    assert p.query(latest("flywheel_agent_tokens_total", direction="out")) > 0
    assert p.query(latest("flywheel_agent_cost_usd_total")) > 0
    assert p.query(latest("flywheel_outcome_lag_seconds_count", workflow=WF)) == stored
    # the loop's gauges: the gate, the target and the error rate, versions and the outbox, MLflow
    assert p.query(latest("flywheel_gate_threshold", "max", workflow=WF)) > 0
    assert p.until(latest("flywheel_unattended_error_target", workflow=WF), lambda v: v is not None) == 0.05
    unattended = p.until(latest("flywheel_unattended_error_rate", workflow=WF), lambda v: v is not None and v > 0)
    assert unattended is not None and 0 < unattended <= 1  # the first answer filed unattended was wrong
    proposed = p.until(latest("flywheel_version_changes", workflow=WF), lambda v: v is not None and v >= 1)
    assert proposed is not None and proposed >= 1  # the learner proposed a version after 5 outcomes
    assert p.until(latest("flywheel_outbox_depth"), lambda v: v == 0) == 0  # which reached MLflow
    assert p.query(latest("flywheel_seconds_since_last_version", workflow=WF)) >= 0
    assert p.query(latest("flywheel_mlflow_up")) == 1
    assert 0 <= p.query(latest("flywheel_human_share", workflow=WF)) <= 1
