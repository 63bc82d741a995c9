"""The slow loop end to end: a small Ray Tune job on the session's Ray, into a judged proposal in MLflow."""

from __future__ import annotations

import ray
from mlflow import MlflowClient
from ray import serve

from flywheel.registry.mlflow_registry import MlflowRegistry
from flywheel.services.app import APP_NAME
from flywheel.services.tuning import tune_workflow
from tests.integration.test_learning import _drive

WF = "ticket_triage"


def test_a_tune_job_proposes_a_version_the_governor_judges(client, serve_settings):
    learner = serve.get_deployment_handle("learner", app_name=APP_NAME)
    events = _drive(client, 400, start_tick=5000)
    assert client.post("/v1/outcomes", json={"events": events}).status_code == 200
    learner.publish_now.remote().result()  # a learned champion of what was posted

    registry = MlflowRegistry(serve_settings.learning.mlflow_tracking_uri, serve_settings.learning.mlflow_artifacts)
    champion = registry.champion(WF)
    assert champion is not None and champion.config.routing.kind == "bandit"
    tuning = serve_settings.tuning.model_copy(update={"trials": 4, "window_outcomes": 2000})
    settings = serve_settings.model_copy(update={"tuning": tuning})

    out = tune_workflow(settings, WF, progress=False)

    assert ray.is_initialized()  # ran on the session's Ray, which it leaves up
    assert out["trials"] == 4
    proposed = registry.versions(WF, tags={"proposed_by": "tune"})
    assert len(proposed) == 1, out
    version = registry.version(WF, proposed[0].number, learner=False)
    # the policy freezes cost_weight: the tuner kept the champion's, so the governor did not refuse it
    assert version.config.cost_weight == champion.config.cost_weight
    assert abs(version.config.thresholds["confidence"] - champion.config.thresholds["confidence"]) <= 0.1 + 1e-9
    assert proposed[0].tags.get("status") in {"auto", "pending"}, (proposed[0].tags, out["judged"])
    assert len(out["judged"]) >= 1, out
    evidence = MlflowClient(serve_settings.learning.mlflow_tracking_uri).get_run(proposed[0].run_id).data.metrics
    assert evidence["trials"] == 4.0 and evidence["window_outcomes"] >= 50, evidence
    assert evidence["estimated_reward_low"] <= evidence["estimated_reward"] <= evidence["estimated_reward_high"]
