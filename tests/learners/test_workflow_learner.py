"""WorkflowLearner: the bandit, the gates' thresholds and the drift monitor, composed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from flywheel.learners.examples import LearningExample
from flywheel.learners.linear_bandit import LinearBandit
from flywheel.learners.threshold import ThresholdLearner
from flywheel.learners.workflow_learner import WorkflowLearner
from flywheel.workflows.loading import load_model
from flywheel.workflows.routing import uniform
from flywheel.workflows.spec import WorkflowSpec

ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = ["billing", "technical", "account", "shipping"]


@pytest.fixture(scope="module")
def triage() -> WorkflowSpec:
    return load_model(ROOT / "configs" / "workflows" / "ticket_triage.yaml", WorkflowSpec)


@pytest.fixture(scope="module")
def reports() -> WorkflowSpec:
    return load_model(ROOT / "configs" / "workflows" / "report_generation.yaml", WorkflowSpec)


def _x(i: int) -> dict:
    return {"product": CATEGORIES[i % 4], "customer_tier": "pro", "channel": "email", "prompt": f"ticket {i % 13}"}


def _example(x: dict, arm: str, quality: float, *, confidence: float | None = 0.9, gate: str | None = "confidence",
             correct: bool | None = None, cost: float = 0.001, latency_s: float = 1.0,
             decided_at: float | None = None) -> LearningExample:
    return LearningExample(x=x, arm=arm, propensity=0.5, quality=quality, cost=cost, latency_s=latency_s,
                           confidence=confidence, correct=quality >= 0.5 if correct is None else correct, gate=gate,
                           decided_at=decided_at)


def test_components_follow_the_spec(triage: WorkflowSpec, reports: WorkflowSpec) -> None:
    learner = WorkflowLearner(triage, seed=4, bandit={"epsilon": 0.3}, threshold={"half_life": 77})
    assert isinstance(learner.bandit, LinearBandit)
    assert learner.bandit.arms == triage.arms
    assert learner.bandit.cost_weight == triage.objective.cost_weight
    assert learner.bandit.latency_weight == triage.objective.latency_weight
    assert learner.bandit.epsilon == 0.3 and learner.bandit.seed == 4
    assert learner.bandit.featurizer.fields == triage.features.fields
    assert learner.bandit.featurizer.prompt_key == "prompt"
    assert set(learner.thresholds) == {"confidence"}
    gate = learner.thresholds["confidence"]
    assert isinstance(gate, ThresholdLearner)
    assert (gate.threshold, gate.target_error_rate, gate.low, gate.high, gate.half_life) == (0.7, 0.05, 0.3, 0.95, 77)
    assert learner.thresholds_now() == {"confidence": 0.7}
    assert WorkflowLearner(reports).thresholds_now() == {"editor_gate": 0.6}


def test_decide_is_the_bandits_decision_over_the_spec_arms(triage: WorkflowSpec) -> None:
    learner = WorkflowLearner(triage, seed=2)
    for i in range(50):
        assert learner.decide(_x(i), f"k{i}") == learner.bandit.decide(_x(i), f"k{i}", triage.arms)


def test_learns_to_route_each_category_to_its_best_arm(triage: WorkflowSpec) -> None:
    quality = {"billing": "fast", "technical": "strong", "account": "fast", "shipping": "fast"}
    learner = WorkflowLearner(triage, seed=1)
    for i in range(3000):
        x = _x(i)
        arm = learner.decide(x, f"r{i}").arm
        good = uniform(7, f"q{i}") < (0.95 if quality[x["product"]] == arm else 0.4)
        learner.learn(_example(x, arm, float(good), cost=0.0001))
    assert learner.n_updates == 3000
    assert learner.decide(_x(1), "t1").arm == "strong"  # technical
    assert learner.decide(_x(0), "t0").arm == "fast"  # billing


def test_the_gate_learns_only_from_known_confidence_and_correctness(triage: WorkflowSpec) -> None:
    learner = WorkflowLearner(triage, threshold={"min_samples": 10})
    gate = learner.thresholds["confidence"]
    learner.learn(_example(_x(0), "fast", 1.0, gate=None))
    learner.learn(_example(_x(0), "fast", 1.0, gate="not_a_gate"))
    learner.learn(LearningExample(_x(0), "fast", 0.5, 1.0, 0.0, 1.0, 0.9, None, "confidence"))
    learner.learn(_example(_x(0), "fast", 0.0, confidence=None))
    assert gate.n_seen == 0 and learner.n_updates == 4
    rng = random.Random(0)
    for _ in range(400):  # answers under 0.5 are wrong, above right: the threshold drops to 0.5
        c = rng.random()
        learner.learn(_example(_x(0), "fast", float(c >= 0.5), confidence=c))
    assert gate.n_seen == 400
    assert learner.thresholds_now()["confidence"] == pytest.approx(0.5)


def test_a_drift_raises_exploration_and_is_reported(triage: WorkflowSpec) -> None:
    learner = WorkflowLearner(triage, seed=3, drift_epsilon=0.4, drift_events=200)
    rng = random.Random(5)
    found = []
    for i in range(3000):
        q = float(rng.random() < (0.95 if i < 1500 else 0.3))
        events = learner.learn(_example(_x(i), "strong", q))
        if events:
            found.extend(events)
            assert learner.bandit.exploration >= 0.4
    assert found and found[0].arm == "strong" and found[0].detector == "adwin"
    assert found[0].mean_after < found[0].mean_before
    assert learner.drift_events == found
    assert learner.evidence()["drift_events"] == float(len(found))


def test_failures_route_around_a_down_arm_and_its_return_is_a_drift(triage: WorkflowSpec) -> None:
    learner = WorkflowLearner(triage, seed=6, down_after=5, comeback_epsilon=0.5, drift_events=100)
    x = _x(1)
    rng = random.Random(1)
    for _ in range(300):  # strong is the best arm ...
        for arm, q in (("strong", 0.95), ("fast", 0.8), ("balanced", 0.85), ("frontier", 0.8)):
            learner.learn(_example(x, arm, float(rng.random() < q), cost=0.0))
    assert learner.decide(x, "a").arm == "strong"
    cost_before = learner.bandit.arm_stats()["strong"]["cost"]
    failures_to_switch = None
    for i in range(500):  # ... until it goes down
        events = learner.learn(_example(x, "strong", 0.0, confidence=None, cost=0.5, latency_s=9.0))
        assert all(e.detector == "adwin" and e.arm == "strong" for e in events)  # the drop, not a comeback
        if failures_to_switch is None and learner.decide(x, "b").arm != "strong":
            failures_to_switch = i + 1
    assert failures_to_switch is not None and failures_to_switch <= 5
    assert learner.down_arms == ["strong"]  # the breaker is open: strong is only probed
    picks = [learner.decide(x, f"k{i}") for i in range(2000)]
    probes = [c for c in picks if c.arm == "strong"]
    assert 0 < len(probes) < 2000 * 0.01  # probed rarely (500 failures: the longest interval)
    assert all(c.propensity == pytest.approx(1 / learner.probe_max) for c in probes)
    assert learner.probability(x, "strong") == pytest.approx(1 / learner.probe_max)
    # 500 failures do not bury it: failures stop teaching once it is below the floor and not chosen
    assert 0.2 <= learner.bandit.predict_one(x)["strong"] <= learner.failure_floor
    assert learner.bandit.arm_stats()["strong"]["cost"] == pytest.approx(cost_before)
    assert learner.thresholds["confidence"].n_seen == 300 * 4  # failures teach the gate nothing
    events = learner.learn(_example(x, "strong", 1.0))  # it answers again
    assert [e.detector for e in events][:1] == ["availability"]
    assert learner.bandit.exploration >= 0.5
    assert learner.down_arms == []


def test_a_late_answer_from_before_the_outage_does_not_close_the_breaker(triage: WorkflowSpec) -> None:
    learner = WorkflowLearner(triage, seed=2, down_after=3)
    x = _x(1)
    for t in range(100, 103):  # decided at 100..102: failures
        learner.learn(_example(x, "fast", 0.0, confidence=None, decided_at=t))
    assert learner.down_arms == ["fast"]
    events = learner.learn(_example(x, "fast", 1.0, decided_at=50))  # decided before them, arriving late
    assert learner.down_arms == ["fast"] and not [e for e in events if e.detector == "availability"]
    events = learner.learn(_example(x, "fast", 1.0, decided_at=120))  # a probe that answered
    assert learner.down_arms == [] and [e.detector for e in events][:1] == ["availability"]


def test_evidence_is_flat_and_per_arm(triage: WorkflowSpec) -> None:
    learner = WorkflowLearner(triage)
    assert learner.evidence()["outcomes"] == 0.0
    learner.learn(_example(_x(0), "fast", 1.0, cost=0.01, latency_s=2.0))
    learner.learn(_example(_x(1), "strong", 0.0, cost=0.0, latency_s=0.0))
    ev = learner.evidence()
    assert all(isinstance(k, str) and isinstance(v, float) for k, v in ev.items())
    assert ev["reward_mean.fast"] == pytest.approx(1.0 - 20 * 0.01 - 0.02 * 2.0)
    assert ev["reward_mean.strong"] == 0.0
    assert ev["reward_mean"] == pytest.approx(ev["reward_mean.fast"] / 2)
    assert ev["outcomes"] == 2.0 and ev["drift_events"] == 0.0
    assert ev["exploration"] == pytest.approx(learner.bandit.exploration)
    assert ev["threshold.confidence"] == learner.thresholds_now()["confidence"]
    assert {"unattended_error.confidence", "human_share.confidence"} <= set(ev)
