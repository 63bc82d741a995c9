"""The HTTP API end to end on Ray Serve: ingress, router and agent deployments, SQLite ledger."""

from tests import api_scenarios as scenarios


def test_run_then_outcome_shows_on_run(client):
    scenarios.run_then_outcome_shows_on_run(client)


def test_checkpoint_resumed_twice_acts_once(client):
    scenarios.checkpoint_resumed_twice_acts_once(client)


def test_duplicates_and_rejections_counted(client):
    scenarios.duplicates_and_rejections_counted(client)


def test_bad_requests_are_clear(client):
    scenarios.bad_requests_are_clear(client)


def test_listing_health_and_stats(client):
    scenarios.listing_health_and_stats(client)


def test_requests_without_a_valid_token_are_refused(client):
    scenarios.requests_without_a_valid_token_are_refused(client)


def test_concurrent_resumes_act_once(client):
    import concurrent.futures as cf

    run = scenarios.waiting_run(client)
    url = f"/v1/runs/{run['run_id']}/resume"

    def resume(i):
        return client.post(url, json={"decision": "approve", "reviewer": f"r{i}"}).status_code

    with cf.ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(resume, range(8)))
    assert codes == [200] + [409] * 7


def test_an_approved_version_reaches_the_ingress(client, serve_settings):
    """A version proposed through the ledger's outbox goes through the governor (policy, review,
    audit) and becomes the version runs are decided with: there is no other way to make one live."""
    import time

    from ray import serve

    from flywheel.ledger import Ledger
    from flywheel.registry.learned_config import RoutingConfig, initial_config
    from flywheel.registry.mlflow_registry import MlflowRegistry
    from flywheel.services.app import APP_NAME
    from flywheel.services.runtime import load_workflows

    wf = "ticket_triage"
    registry = MlflowRegistry(serve_settings.learning.mlflow_tracking_uri, serve_settings.learning.mlflow_artifacts)
    champion = registry.champion_number(wf)
    base = (registry.config(wf, champion) if champion is not None
            else initial_config(load_workflows(serve_settings)[wf], seed=serve_settings.seed))
    live = client.get("/v1/workflows").json()
    triage = next(w for w in live if w["name"] == wf)
    weights = {a: (5.0 if a == "strong" else -5.0) for a in triage["arms"]}
    proposal = base.model_copy(update={"version": "", "routing": RoutingConfig(
        kind="softmax", weights=weights, temperature=1.0, seed=0)})
    ledger = Ledger(serve_settings.resolved_database_url())
    ledger.enqueue_version(workflow=wf, proposed_by="http-tests", position=0, config=proposal.model_dump(),
                           evidence={}, learner_state=None, policy_state=None)
    _, mlops = ledger.create_token("mlops", name="http-tests-mlops", created_by="tests")
    _, operator = ledger.create_token("operator", name="http-tests-operator", created_by="tests")
    ledger.dispose()
    learner = serve.get_deployment_handle("learner", app_name=APP_NAME)
    number = None
    deadline = time.time() + 15
    while number is None and time.time() < deadline:
        learner.publish_now.remote().result()
        mine = [v for v in registry.versions(wf) if v.tags.get("proposed_by") == "http-tests"]
        number = mine[-1].number if mine else None
        time.sleep(0.2)
    assert number is not None, "the proposal was not registered"
    if registry.version_tags(wf, number)["status"] == "pending":  # a change of kind waits for review
        r = client.post(f"/v1/workflows/{wf}/versions/{number}/approve", json={"reason": "http test"},
                        headers={"Authorization": f"Bearer {mlops}"})
        assert r.status_code == 200, r.text
    version = f"{wf}@v{number}"
    try:
        deadline = time.time() + 5
        while time.time() < deadline:
            run = scenarios.start(client)
            if run["decision"]["config_version"] == version:
                break
            time.sleep(0.05)
        assert run["decision"]["config_version"] == version
        assert run["decision"]["scores"]["strong"] == 5.0
    finally:  # the learner's bandit versions would wait for review behind a softmax champion
        if champion is not None:
            r = client.post(f"/v1/workflows/{wf}/rollback", json={"to": champion, "reason": "http test done"},
                            headers={"Authorization": f"Bearer {operator}"})
            assert r.status_code == 200, r.text
