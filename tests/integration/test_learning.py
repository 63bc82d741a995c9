"""The fast loop on Serve: outcomes posted over HTTP change live routing within the interval."""

import time

from ray import serve

from flywheel.sim import Environment, TrafficGenerator, load_scenario
from flywheel.registry.mlflow_registry import MlflowRegistry
from flywheel.services.app import APP_NAME
from tests.integration.conftest import PUBLISH_EVERY_S

TICKET = {"text": "where is my parcel", "product": "shipping", "customer_tier": "pro", "channel": "chat"}


def _drive(client, n, start_tick=0):
    scenario = load_scenario("stationary")
    env, traffic = Environment(scenario), TrafficGenerator(scenario, seed=11)
    events = []
    for tick in range(start_tick, start_tick + n):
        req = traffic.at(tick)
        run = client.post(f"/v1/workflows/{req.workflow}/runs",
                          json={"input": req.input, "metadata": {"sim_tick": str(tick)}}).json()
        if run["status"] == "failed":
            ok, q = False, 0.0
        else:
            truth = env.respond(run["decision"]["arm"], req.workflow, req.input, tick)
            ok, q = truth.correct, truth.score
        events.append({"event_id": f"learn-{run['run_id']}", "run_id": run["run_id"], "success": ok, "quality": q})
    return events


def test_outcomes_change_live_routing_within_the_interval(client, serve_settings):
    learner = serve.get_deployment_handle("learner", app_name=APP_NAME)
    events = _drive(client, 150)
    time.sleep(PUBLISH_EVERY_S + 1)  # let what earlier tests posted be published first
    seen = len(learner.status.remote().result()["published"])
    posted = time.time()
    assert client.post("/v1/outcomes", json={"events": events}).json()["new"] == len(events)

    version = published_at = None
    deadline = posted + PUBLISH_EVERY_S + 10
    while version is None and time.time() < deadline:
        fresh = [(v, t) for v, t, status in learner.status.remote().result()["published"][seen:]
                 if v.startswith("ticket_triage@") and status == "auto"]
        if fresh:
            version, published_at = fresh[0]
        time.sleep(0.05)
    assert version is not None, "the learner published no new ticket_triage version"

    live_at = None
    while time.time() < published_at + 5:
        run = client.post("/v1/workflows/ticket_triage/runs", json={"input": TICKET}).json()
        number = int(run["decision"]["config_version"].split("@v")[-1]) if "@v" in run["decision"]["config_version"] else 0
        if number >= int(version.split("@v")[-1]):
            live_at = time.time()
            break
        time.sleep(0.02)
    assert live_at is not None, f"{version} was published but no run decided with it"
    print(f"\n{version}: published {published_at - posted:.2f}s after the outcomes, "
          f"live in runs {live_at - published_at:.3f}s after publishing")
    assert published_at - posted <= PUBLISH_EVERY_S + 2
    assert live_at - published_at <= 2.0

    reg = MlflowRegistry(serve_settings.learning.mlflow_tracking_uri, serve_settings.learning.mlflow_artifacts)
    champion = reg.champion("ticket_triage")
    assert champion.number >= int(version.split("@v")[-1])
    assert champion.config.routing.kind == "bandit" and champion.config.routing.state_sha
    assert reg.metrics("ticket_triage", champion.number)["outcomes"] >= 1
    assert int(champion.tags["ledger_position"]) >= 1
    assert set(run["decision"]["scores"]) == {"fast", "balanced", "strong", "frontier"}
