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


def test_published_config_reaches_the_ingress(client, flywheel_url):
    """A config published to the router deployment becomes the version runs are decided with."""
    import time

    from ray import serve

    from flywheel.services.app import APP_NAME

    router = serve.get_deployment_handle("router", app_name=APP_NAME)
    live = client.get("/v1/workflows").json()
    triage = next(w for w in live if w["name"] == "ticket_triage")
    weights = {a: (5.0 if a == "strong" else -5.0) for a in triage["arms"]}
    cfg = {"workflow": "ticket_triage", "thresholds": {"confidence": 0.5},
           "routing": {"kind": "softmax", "weights": weights, "temperature": 1.0, "seed": 0},
           "cost_weight": 20.0}
    version = router.publish.remote(cfg).result()
    deadline = time.time() + 5
    while time.time() < deadline:
        run = scenarios.start(client)
        if run["decision"]["config_version"] == version:
            break
        time.sleep(0.05)
    assert run["decision"]["config_version"] == version
    assert run["decision"]["scores"]["strong"] == 5.0
