"""The learning loop over a real ledger and a real MLflow registry (no Ray)."""

import asyncio

import pytest

from flywheel.sim import Environment, TrafficGenerator, load_scenario
from flywheel.registry.governor import Governor
from flywheel.registry.mlflow_registry import MlflowRegistry
from flywheel.registry.policy import load_policies
from flywheel.learners.loop import LearningLoop
from flywheel.services.agents.local import LocalAgents
from flywheel.services.runtime import Runtime
from flywheel.services.settings import load_settings
from flywheel.workflows.inputs import features_of
from flywheel.ledger.records import OutcomeEvent

N_RUNS = 500


async def _stream(runtime: Runtime, n: int) -> None:
    """n simulated runs through the runtime, each with the outcome the world reports."""
    scenario = load_scenario("abrupt_drift")
    env, traffic = Environment(scenario), TrafficGenerator(scenario, seed=3)
    for tick in range(n):
        req = traffic.at(tick)
        run = await runtime.start_run(req.workflow, req.input, {"sim_tick": str(tick)})
        if run.status == "failed":
            ok, q = False, 0.0
        else:
            truth = env.respond(run.decision.arm, req.workflow, req.input, tick)
            ok, q = truth.correct, truth.score
        await runtime.post_outcomes([OutcomeEvent(event_id=f"o-{run.run_id}", run_id=run.run_id, success=ok, quality=q)])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    settings = load_settings("configs/app.yaml")
    settings = settings.model_copy(update={"database_url": f"sqlite:///{root}/ledger.db",
                                           "simulator": settings.simulator.model_copy(update={"latency_scale": 0.0})})
    runtime = Runtime.from_settings(settings, LocalAgents.from_settings(settings))
    asyncio.run(_stream(runtime, N_RUNS))
    return runtime, root


def _loop(runtime, registry):
    governor = None
    if registry is not None:
        governor = Governor(registry, runtime.ledger, load_policies("configs/policies.yaml"))
    return LearningLoop(runtime.specs, runtime.ledger, registry, governor=governor, seed=0, n_bits=12,
                        publish_every_outcomes=10**9, publish_every_s=10**9)


def _publish(loop):
    """Propose what is due (into the outbox), then register it; {workflow: (snapshot, outcome)}."""
    proposed = {p.config.workflow: p for p in loop.publish_due(force=True)}
    done = {o.workflow: o for o in loop.publish_pending()}
    return {wf: (p, done.get(wf)) for wf, p in proposed.items()}


def _probe_decisions(loop):
    scenario = load_scenario("abrupt_drift")
    traffic = TrafficGenerator(scenario, seed=99)
    out = []
    for tick in range(300):
        req = traffic.at(tick)
        learner = loop.learners[req.workflow]
        c = learner.decide(features_of(loop.specs[req.workflow], req.input), key=f"probe-{tick}")
        out.append((c.arm, round(c.propensity, 12)))
    return out, {wf: l.thresholds_now() for wf, l in loop.learners.items()}


def test_restart_mid_stream_gives_the_same_decisions(world, tmp_path):
    runtime, _ = world
    registry = MlflowRegistry(f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "art"))
    never_stopped = _loop(runtime, None)
    while never_stopped.step(limit=97):
        pass

    first = _loop(runtime, registry)
    first.step(limit=230)  # stopped mid-stream, after publishing what it had
    published = _publish(first)
    assert set(published) == {"ticket_triage", "report_generation"}
    assert {o.status for _, o in published.values()} == {"auto"}
    del first
    restarted = _loop(runtime, registry)
    loaded = restarted.restore()
    assert set(loaded.values()) == {1}
    assert 0 < restarted.position < never_stopped.position
    while restarted.step(limit=97):
        pass

    assert restarted.positions == never_stopped.positions
    for wf in runtime.specs:
        assert restarted.learners[wf].n_updates == never_stopped.learners[wf].n_updates > 0
    assert _probe_decisions(restarted) == _probe_decisions(never_stopped)


def test_a_version_carries_config_state_evidence_and_lineage(world, tmp_path):
    runtime, _ = world
    registry = MlflowRegistry(f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "art"))
    loop = _loop(runtime, registry)
    loop.step(limit=200)
    v1 = _publish(loop)
    assert loop.due(force=True) == []  # nothing new learned: nothing to publish
    loop.step()
    v2 = _publish(loop)
    tt = registry.champion("ticket_triage")
    assert v2["ticket_triage"][1].status == "auto", v2["ticket_triage"][1].reasons
    assert tt.config.version == "ticket_triage@v2" and v2["ticket_triage"][1].number == 2
    assert tt.parent == 1 and tt.position == loop.positions["ticket_triage"]
    assert tt.config.routing.kind == "bandit" and tt.config.routing.state_sha
    assert set(tt.config.thresholds) == {"confidence"}
    step = abs(tt.config.thresholds["confidence"] - registry.config("ticket_triage", 1).thresholds["confidence"])
    assert step <= 0.1 + 1e-9  # the policy lets a threshold move 0.1 a version (clipped)
    assert tt.policy_state == v2["ticket_triage"][0].policy_state
    assert tt.tags["proposed_by"] == "learner" and tt.tags["status"] == "auto"
    metrics = registry.metrics("ticket_triage", 2)
    assert metrics["outcomes"] > 0 and "estimated_gain" in metrics and metrics["estimated_gain_se"] > 0
    assert v1["ticket_triage"][1].number == 1


def test_a_policy_that_cannot_decide_is_refused_and_the_live_one_stays(world):
    from flywheel.learners.config_book import ConfigBook
    from flywheel.learners.state import dumps_policy, loads_policy
    from flywheel.registry.learned_config import state_sha

    runtime, _ = world
    loop = _loop(runtime, None)
    loop.step(limit=100)
    published = {p.config.workflow: p for p in loop.publish_due(force=True)}
    good = published["ticket_triage"]
    book = ConfigBook([])
    assert book.apply(good.config, good.policy_state)
    broken = loads_policy(good.policy_state)
    del broken.bandit.featurizer  # as if saved by code that no longer matches
    bad_state = dumps_policy(broken)
    routing = good.config.routing.model_copy(update={"state_sha": state_sha(bad_state)})
    bad = good.config.model_copy(update={"version": "ticket_triage@v99", "routing": routing})
    with pytest.raises(ValueError, match="refused"):
        book.apply(bad, bad_state)
    assert book.live("ticket_triage").version == good.config.version
