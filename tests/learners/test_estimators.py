"""Off-policy estimators on seeded simulations: intervals that cover the truth, DR beating IPS."""

from __future__ import annotations

import pytest

from flywheel.eval.logged_sim import packaged_spec, simulate_log, true_value
from flywheel.learners.counterfactual import (
    Candidate, RewardModel, attended, candidate_state, evaluate, gate_reward, predictions,
)
from flywheel.learners.estimators import IPS, SNIPS, DoublyRobust
from flywheel.learners.examples import LearningExample
from flywheel.learners.state import dumps_policy, loads_policy
from flywheel.learners.workflow_learner import WorkflowLearner

WF = "ticket_triage"


@pytest.fixture(scope="module")
def world():
    """A champion trained on one log, its exploring logging policy, a candidate and its true value."""
    spec = packaged_spec(WF)
    learner = WorkflowLearner(spec, seed=0)
    simulate_log("stationary", WF, 1500, seed=100, learner=learner)
    base = dumps_policy(learner.policy())
    logging = loads_policy(candidate_state(base, Candidate(spec.objective.cost_weight, 0.3), spec))
    cand = Candidate(cost_weight=10.0, exploration=0.05, thresholds={"confidence": 0.6})
    target = loads_policy(candidate_state(base, cand, spec))
    truth_log = simulate_log("stationary", WF, 1, seed=0, policy=logging)
    truth = true_value(truth_log, target, cand.thresholds, runs=20000)
    return spec, learner, logging, cand, target, truth


def test_intervals_cover_the_true_value_and_dr_beats_ips(world):
    spec, learner, logging, cand, target, truth = world
    model = RewardModel(learner.policy(), spec.objective)
    # 40 seeded logs of ~700 runs each; the intervals are calibrated (over 60 seeds the spread of each
    # estimate's error matches its mean standard error) and cover 57/60 (IPS), 54/60 (SNIPS, DR)
    trials, covered, err = 40, {"ips": 0, "snips": 0, "dr": 0}, {"ips": 0.0, "snips": 0.0, "dr": 0.0}
    for seed in range(trials):
        log = simulate_log("stationary", WF, 1000, seed=1 + seed, policy=logging)
        ev = evaluate(log.examples, target, cand.thresholds, spec, predictions(model, log.examples, spec.arms))
        for name in covered:
            e = getattr(ev, name)
            covered[name] += e.covers(truth.value)
            err[name] += abs(e.value - truth.value)
    assert min(covered.values()) >= 0.9 * trials, (covered, truth)
    assert err["dr"] < err["ips"], err


def test_constraints_are_estimated_near_their_truth(world):
    spec, learner, logging, cand, target, truth = world
    log = simulate_log("stationary", WF, 3000, seed=77, policy=logging)
    ev = evaluate(log.examples, target, cand.thresholds, spec)
    assert abs(ev.human_share - truth.human_share) < 0.04, (ev, truth)
    assert abs(ev.unattended_error - truth.unattended_error) < 0.02, (ev, truth)
    higher = evaluate(log.examples, target, {"confidence": 0.9}, spec)
    assert higher.human_share > ev.human_share and higher.unattended_error <= ev.unattended_error


def test_ips_is_unbiased_where_snips_normalizes():
    ips, snips = IPS(), SNIPS()
    for arm in [0, 1, 1, 1]:  # the target's probabilities do not sum to the log's
        ips.add(0.5, 0.5, 1.0 if arm else 0.5)
        snips.add(0.5, 0.5, 1.0 if arm else 0.5)
    assert ips.estimate().value == pytest.approx(0.875)
    assert snips.estimate().value == pytest.approx(0.875)
    assert IPS().estimate().n == 0 and SNIPS().estimate().se == float("inf")


def test_doubly_robust_corrects_a_wrong_model():
    est = DoublyRobust()
    for arm in ["a", "b"] * 200:  # the model says 0.5 everywhere; truth: a pays 0, b pays 1
        est.add({"b": 1.0}, arm, 0.5, 1.0 if arm == "b" else 0.0, {"a": 0.5, "b": 0.5})
    assert est.estimate().value == pytest.approx(1.0)


def test_the_gate_model_sends_low_confidence_to_a_human():
    spec = packaged_spec(WF)
    wrong = LearningExample({}, "fast", 0.5, quality=0.0, cost=0.0, latency_s=0.0, confidence=0.4,
                            correct=False, gate="confidence")
    assert attended(wrong, {"confidence": 0.5}) and not attended(wrong, {"confidence": 0.3})
    assert gate_reward(wrong, {"confidence": 0.5}, spec.objective) == pytest.approx(-spec.objective.override_penalty)
    assert gate_reward(wrong, {"confidence": 0.3}, spec.objective) == 0.0
