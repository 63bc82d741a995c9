"""One decision object: a published version, loaded the way a replica loads it, decides exactly like the learner."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.learners.config_book import ConfigBook
from flywheel.learners.examples import LearningExample
from flywheel.learners.loop import LearningLoop
from flywheel.learners.routing_policy import RoutingPolicy
from flywheel.learners.state import dumps_learner, dumps_policy, loads_learner, loads_policy
from flywheel.learners.workflow_learner import WorkflowLearner
from flywheel.ledger import Ledger
from flywheel.registry.mlflow_registry import MlflowRegistry
from flywheel.workflows.loading import load_model
from flywheel.workflows.routing import uniform
from flywheel.workflows.spec import WorkflowSpec

ROOT = Path(__file__).resolve().parents[2]
PRODUCTS = ["billing", "technical", "account", "shipping"]


@pytest.fixture(scope="module")
def spec() -> WorkflowSpec:
    return load_model(ROOT / "configs" / "workflows" / "ticket_triage.yaml", WorkflowSpec)


def _x(i: int) -> dict:
    return {"product": PRODUCTS[i % 4], "customer_tier": "pro", "channel": "chat", "prompt": f"ticket about {i % 11}"}


def _teach(learner: WorkflowLearner, n: int, *, down: str | None = None, worse_from: int | None = None) -> None:
    """A stream where `down` fails every call, and `strong` drops from 0.9 to 0.2 quality at `worse_from`."""
    for i in range(n):
        x = _x(i)
        c = learner.decide(x, f"run-{i}")
        if c.arm == down:
            learner.learn(LearningExample(x, c.arm, c.propensity, 0.0, 0.0, 0.0, None, None, "confidence",
                                          decided_at=float(i)))
            continue
        p = 0.9 if c.arm == "strong" and (worse_from is None or i < worse_from) else 0.5
        if c.arm == "strong" and worse_from is not None and i >= worse_from:
            p = 0.2
        ok = uniform(5, f"{i}/{c.arm}") < p
        learner.learn(LearningExample(x, c.arm, c.propensity, float(ok), 0.001, 1.0, 0.8, ok, "confidence",
                                      decided_at=float(i)))


def _decisions(decide, n: int = 400) -> list[tuple[str, float]]:
    return [(c.arm, round(c.propensity, 12)) for c in (decide(_x(i), f"next-{i}") for i in range(n))]


def test_a_loaded_policy_decides_like_the_learner_with_an_arm_down_and_after_a_drift(spec):
    learner = WorkflowLearner(spec, seed=2, drift_events=300)
    _teach(learner, 3000, down="frontier", worse_from=1500)
    assert learner.down_arms == ["frontier"]
    assert any(e.detector == "adwin" for e in learner.drift_events)  # the drop of `strong` was seen
    served = loads_policy(dumps_policy(learner.policy()))  # what a replica holds
    assert isinstance(served, RoutingPolicy) and served.probes == learner.policy().probes
    mine = _decisions(learner.decide)
    theirs = _decisions(lambda x, key: served.decide(x, key, spec.arms))
    assert mine == theirs
    q = served.probes["frontier"]
    assert 0 < q < 0.05 and served.probability(_x(0), "frontier", spec.arms) == learner.probability(_x(0), "frontier") == q
    for i in range(50):
        assert served.probability(_x(i), "fast", spec.arms) == pytest.approx(learner.probability(_x(i), "fast"))


def test_a_restored_learner_continues_exactly(spec):
    a = WorkflowLearner(spec, seed=3)
    _teach(a, 800, down="frontier")
    b = loads_learner(dumps_learner(a))
    assert b.down_arms == a.down_arms and b.n_updates == a.n_updates
    _teach(a, 400)
    _teach(b, 400)
    assert _decisions(a.decide, 200) == _decisions(b.decide, 200)
    assert a.evidence() == b.evidence()


def test_a_published_version_through_mlflow_goes_live_in_a_replica_and_decides_like_the_learner(spec, tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    ledger.upgrade()
    registry = MlflowRegistry(f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "artifacts"))
    loop = LearningLoop({spec.name: spec}, ledger, registry, seed=2)
    learner = loop.learners[spec.name]
    _teach(learner, 1500, down="frontier", worse_from=800)
    loop._pending[spec.name] = 1
    config, learner_state, policy_state, evidence = loop.snapshot(spec.name)
    number = registry.register(config, learner_state=learner_state, policy_state=policy_state, evidence=evidence,
                               position=0, proposed_by="learner")
    published = registry.version(spec.name, number)
    book = ConfigBook([])  # a replica's live configs
    assert book.apply(published.config, published.policy_state)
    live = book.live(spec.name)
    assert live.version == f"{spec.name}@v{number}"
    assert _decisions(lambda x, key: live.policy.decide(x, key, spec.arms)) == _decisions(learner.decide)
    ledger.dispose()


def test_a_version_whose_policy_state_is_a_pickle_never_goes_live(spec, tmp_path):
    import pickle  # the old format, crafted: it must be refused, not loaded

    from flywheel.registry.learned_config import LearnedConfig, RoutingConfig, state_sha

    learner = WorkflowLearner(spec)
    state = pickle.dumps(learner.bandit)
    config = LearnedConfig(workflow=spec.name, thresholds={"confidence": 0.7}, cost_weight=1.0,
                           routing=RoutingConfig(kind="bandit", state_sha=state_sha(state)), version="tt@v9")
    book = ConfigBook([])
    with pytest.raises(ValueError, match="pickle"):
        book.apply(config, state)
    assert book.versions() == {}
