"""Resource planning's inputs: the agents' loads from the ledger, the p95 targets, the app's Serve config."""

from __future__ import annotations

import math

import pytest

from flywheel.cli.tune import plan_table
from flywheel.ledger.load import AgentLoadStats
from flywheel.services.resource_planning import demands_of, plan_workflow_resources
from flywheel.services.runtime import load_workflows
from flywheel.services.serve_config import app_config
from flywheel.services.settings import AppSettings, load_settings

WF, OTHER = "ticket_triage", "report_generation"


@pytest.fixture
def settings(tmp_path) -> AppSettings:
    return load_settings("configs/app.yaml").model_copy(update={"database_url": f"sqlite:///{tmp_path}/ledger.db"})


def _stats(workflow, agent, requests, mean_rate, peak_rate, mean_s, std_s) -> AgentLoadStats:
    return AgentLoadStats(workflow=workflow, agent=agent, requests=requests, first_at=0.0, last_at=100.0,
                          mean_rate=mean_rate, peak_rate=peak_rate, mean_service_s=mean_s, std_service_s=std_s,
                          max_service_s=3 * mean_s)


def test_an_agent_carries_every_workflows_load_at_the_strictest_target(settings):
    specs = load_workflows(settings)
    loads = [_stats(WF, "fast", 300, 3.0, 6.0, 0.2, 0.1), _stats(OTHER, "fast", 100, 1.0, 4.0, 0.6, 0.0),
             _stats(OTHER, "strong", 50, 0.5, 1.0, 2.0, 0.5)]
    [fast] = demands_of(settings, specs, WF, loads)  # strong: the workflow did not call it
    assert fast.agent == "fast" and fast.target_s == min(specs[WF].targets.p95_latency_s,
                                                         specs[OTHER].targets.p95_latency_s)
    assert (fast.load.mean_rate, fast.load.peak_rate) == (4.0, 10.0)
    assert fast.load.mean_service_s == pytest.approx((300 * 0.2 + 100 * 0.6) / 400)
    second = (300 * (0.01 + 0.04) + 100 * 0.36) / 400
    assert fast.service_cv == pytest.approx(math.sqrt(second - 0.3**2) / 0.3)
    assert fast.load.slots == settings.agents["fast"].max_ongoing_requests and fast.accelerators_per_replica == 0


def test_a_workflow_without_a_p95_target_is_named(settings):
    specs = load_workflows(settings)
    specs[WF] = specs[WF].model_copy(update={"targets": specs[WF].targets.model_copy(update={"p95_latency_s": None})})
    with pytest.raises(ValueError, match="targets.p95_latency_s: workflow 'ticket_triage'"):
        demands_of(settings, specs, WF, [_stats(WF, "fast", 10, 1.0, 1.0, 0.1, 0.0)])


def test_no_logged_agent_calls_no_plan(settings):
    with pytest.raises(ValueError, match="no agent calls logged in the last 3600 s"):
        plan_workflow_resources(settings, WF, progress=False)
    with pytest.raises(ValueError, match="not one of"):
        plan_workflow_resources(settings, "nope", progress=False)


def test_the_app_config_carries_the_settings_and_each_agents_autoscaling(settings):
    config = app_config(settings)
    assert AppSettings.model_validate(config["args"]["settings"]) == settings.absolute()
    assert config["import_path"] == "flywheel.services.app:build_app"
    assert {d["name"]: d["autoscaling_config"]["max_replicas"] for d in config["deployments"]} == {
        f"agent-{a}": settings.agents[a].replicas for a in settings.agents}


def test_the_plan_table_marks_a_missed_target():
    row = {"agent": "fast", "min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 2.5,
           "replicas_mean": 1, "replicas_peak": 3, "sim_p95_mean_s": 0.5, "sim_p95_peak_s": 4.5,
           "p95_target_s": 4.0, "meets": False}
    table = plan_table([row]).splitlines()
    assert table[0].split()[:3] == ["agent", "min", "max"] and table[1].split()[-1] == "NO"
    assert "4.500s" in table[1]
