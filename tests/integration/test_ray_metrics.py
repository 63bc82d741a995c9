"""On Ray Serve, Flywheel's metrics go through ray.util.metrics and come out of Ray's own metrics
export (each node's `MetricsExportPort`) with Ray's `ray_` prefix and Ray's labels beside the
declared ones; they move as runs and outcomes are posted to the service on Ray."""

from __future__ import annotations

import time
import uuid

import httpx
import ray
from prometheus_client.parser import text_string_to_metric_families

from flywheel.services.metrics import SPECS
from tests.integration.conftest import METRICS_REPORT_MS

WF = "ticket_triage"
RAY_LABELS = {"Component", "NodeAddress", "SessionName", "Version", "WorkerId",
              "otel_scope_name", "otel_scope_schema_url", "otel_scope_version"}
"""The labels Ray 2.60's export adds to every application metric."""


def ray_name(spec) -> str:
    """A metric's name in Ray's export: Ray's prefix, and counters' `_total` (RayBackend)."""
    return "ray_" + spec.name + ("_total" if spec.kind == "counter" else "")


def export_urls() -> list[str]:
    return [f"http://{n['NodeManagerAddress']}:{n['MetricsExportPort']}/metrics"
            for n in ray.nodes() if n["Alive"]]


def scrape() -> list:
    """Every Flywheel sample of every node's export, as prometheus-client parses it."""
    samples = []
    for url in export_urls():
        text = httpx.get(url, timeout=10).text
        samples += [s for f in text_string_to_metric_families(text) if "flywheel_" in f.name for s in f.samples]
    return samples


def total(samples, name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def settled(timeout_s: float = 60.0) -> list:
    """A scrape once the counters stop moving: what earlier tests posted has all been reported."""
    keys = ("ray_flywheel_runs_started_total", "ray_flywheel_outcomes_total")
    last = scrape()
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        time.sleep(2.5 * METRICS_REPORT_MS / 1000)
        now = scrape()
        if all(total(now, k) == total(last, k) for k in keys):
            return now
        last = now
    raise AssertionError("Ray's export kept moving without traffic")


def test_flywheel_metrics_come_out_of_rays_export_and_move(client):
    before = settled()
    runs = [client.post(f"/v1/workflows/{WF}/runs", json={"input": {
        "text": f"parcel {i} never arrived", "product": "shipping", "customer_tier": "pro", "channel": "chat"}}).json()
        for i in range(10)]
    answered = [r for r in runs if r["status"] in ("completed", "waiting")]
    failed = [r for r in runs if r["status"] == "failed"]
    events = [{"event_id": f"rm-{uuid.uuid4().hex}", "run_id": r["run_id"], "success": True, "quality": 0.8}
              for r in answered]
    assert client.post("/v1/outcomes", json={"events": events}).json()["new"] == len(events)
    r = client.post("/v1/outcomes", json={"events": events[:1] + [
        {"event_id": f"rm-{uuid.uuid4().hex}", "run_id": "no-such-run", "success": True}]}).json()
    assert (r["duplicate"], len(r["rejected"])) == (1, 1)

    def moved(samples, name, **labels):
        return total(samples, name, **labels) - total(before, name, **labels)

    deadline = time.time() + 60  # Ray reports every second here (conftest), 10 s by default
    after = scrape()
    while moved(after, "ray_flywheel_outcomes_rejected_total", reason="unknown_run_id") < 1 and time.time() < deadline:
        time.sleep(0.5)
        after = scrape()
    assert moved(after, "ray_flywheel_outcomes_rejected_total", reason="unknown_run_id") == 1
    assert moved(after, "ray_flywheel_runs_started_total", workflow=WF) == 10
    assert moved(after, "ray_flywheel_runs_finished_total", workflow=WF, status="failed") == len(failed)
    assert moved(after, "ray_flywheel_outcomes_total", result="accepted") == len(events) + len(failed)
    assert moved(after, "ray_flywheel_outcomes_total", result="duplicate") == 1
    assert moved(after, "ray_flywheel_outcomes_total", result="rejected") == 1
    assert moved(after, "ray_flywheel_decision_seconds_count", workflow=WF) == 10
    assert moved(after, "ray_flywheel_reward_count", workflow=WF) == len(events) + len(failed)
    assert moved(after, "ray_flywheel_agent_tokens_total", direction="out") > 0
    # the learner deployment's gauges (its LoopGauges refresh every 5 s)
    gauges = {"ray_flywheel_mlflow_up", "ray_flywheel_human_share", "ray_flywheel_outbox_depth"}
    deadline = time.time() + 60
    while not gauges <= {s.name for s in after} and time.time() < deadline:
        time.sleep(0.5)
        after = scrape()
    assert total(after, "ray_flywheel_mlflow_up") >= 1
    targets = [s.value for s in after if s.name == "ray_flywheel_unattended_error_target" and s.labels["workflow"] == WF]
    assert targets and set(targets) == {0.05}

    # exact names and labels: Ray's prefix, the declared labels and Ray's beside them
    names = {ray_name(spec) + suffix: (spec, suffix)
             for spec in SPECS for suffix in (("_bucket", "_count", "_sum") if spec.kind == "histogram" else ("",))}
    for sample in after:
        assert sample.name in names, f"{sample.name}: not a declared metric under Ray's name"
        spec, suffix = names[sample.name]
        extra = {"le"} if suffix == "_bucket" else set()
        assert set(sample.labels) == set(spec.labels) | RAY_LABELS | extra, (sample.name, sample.labels)
    seen = {s.name for s in after}
    for must in ("ray_flywheel_runs_started_total", "ray_flywheel_runs_finished_total", "ray_flywheel_outcomes_total",
                 "ray_flywheel_decision_seconds_bucket", "ray_flywheel_reward_sum", "ray_flywheel_gate_threshold",
                 "ray_flywheel_agent_cost_usd_total", "ray_flywheel_outcome_lag_seconds_count", *gauges):
        assert must in seen, must
