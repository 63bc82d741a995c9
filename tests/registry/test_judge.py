"""Judging a proposal by a policy: parameters and diff, bounds, steps, autonomy, precedence,
bandit-derived parameters."""

from __future__ import annotations

import pytest

from flywheel.registry.judge import diff, evaluate, parameters
from flywheel.registry.learned_config import LearnedConfig
from flywheel.registry.policy import WorkflowPolicy
from tests.registry.configs import bandit, config, policy


# -- parameters and diff ---------------------------------------------------------


def test_parameters_flatten_every_learnable_value():
    cfg = config(resources={"classify.replicas": 2.0})
    assert parameters(cfg) == {
        "thresholds.confidence": 0.7,
        "routing.weights.fast": 0.0,
        "routing.weights.strong": 0.5,
        "routing.exploration": 0.1,
        "routing.temperature": 1.0,
        "cost_weight": 1.0,
        "resources.classify.replicas": 2.0,
    }


def test_diff_lists_changed_new_and_removed_parameters():
    a = config(resources={"x.replicas": 1.0})
    b = config(thresholds={"confidence": 0.8, "other": 0.5})
    assert diff(a, b) == [
        ("thresholds.confidence", 0.7, 0.8),
        ("thresholds.other", None, 0.5),
        ("resources.x.replicas", 1.0, None),
    ]
    assert diff(a, a) == []
    assert ("cost_weight", None, 1.0) in diff(None, b)


def test_resources_change_the_content_hash_only_when_present():
    cfg = config()
    assert cfg.content_hash() == config(resources={}).content_hash()
    assert cfg.content_hash() != config(resources={"a.replicas": 2.0}).content_hash()
    assert LearnedConfig.model_validate(cfg.model_dump()).content_hash() == cfg.content_hash()


# -- bounds ----------------------------------------------------------------------


def test_out_of_bounds_is_clipped_and_the_reason_names_path_bound_and_values():
    verdict = evaluate(config(thresholds={"confidence": 0.99}), config(), policy(**{"thresholds.*": {"max": 0.95}}))
    assert verdict.decision == "auto"
    assert verdict.config.thresholds == {"confidence": 0.95}
    assert verdict.config.version == "wf@1"
    assert verdict.reasons == ["thresholds.confidence: 0.99 above max 0.95, clipped to 0.95"]
    (change,) = verdict.changes
    assert (change.path, change.before, change.proposed, change.after) == ("thresholds.confidence", 0.7, 0.99, 0.95)


def test_bounds_apply_to_unchanged_values_too():
    live = config(thresholds={"confidence": 0.2})
    verdict = evaluate(live, live, policy(**{"thresholds.*": {"min": 0.3}}))
    assert verdict.config.thresholds == {"confidence": 0.3}
    assert verdict.reasons == ["thresholds.confidence: 0.2 below min 0.3, clipped to 0.3"]


def test_out_of_bounds_is_refused_when_the_policy_says_refuse():
    proposal = config(thresholds={"confidence": 0.99})
    rule_level = evaluate(proposal, config(), policy(**{"thresholds.*": {"max": 0.95, "out_of_bounds": "refuse"}}))
    workflow_level = evaluate(
        proposal, config(), WorkflowPolicy(out_of_bounds="refuse", parameters={"thresholds.*": {"max": 0.95}})
    )
    for verdict in (rule_level, workflow_level):
        assert verdict.decision == "refused"
        assert verdict.config.thresholds == {"confidence": 0.99}
        assert verdict.reasons == ["thresholds.confidence: 0.99 above max 0.95: refused"]


def test_a_clip_that_makes_the_config_invalid_is_refused():
    verdict = evaluate(config(cost_weight=1.0), config(), policy(cost_weight={"max": -1.0}))
    assert verdict.decision == "refused"
    assert "cost_weight" in verdict.reasons[-1] and "not valid" in verdict.reasons[-1]
    assert verdict.config.cost_weight == 1.0


def test_non_finite_values_are_refused():
    verdict = evaluate(config(thresholds={"confidence": float("nan")}), config(), WorkflowPolicy())
    assert verdict.decision == "refused"
    assert "thresholds.confidence" in verdict.reasons[0]


# -- autonomy ---------------------------------------------------------------------


def test_changing_a_frozen_parameter_is_refused_with_a_reason_naming_the_path():
    verdict = evaluate(config(cost_weight=2.0), config(), policy(cost_weight={"autonomy": "frozen"}))
    assert verdict.decision == "refused"
    assert verdict.reasons == ["cost_weight: frozen, proposal changes it from 1.0 to 2.0: refused"]


def test_an_unchanged_frozen_parameter_passes():
    verdict = evaluate(config(thresholds={"confidence": 0.75}), config(), policy(cost_weight={"autonomy": "frozen"}))
    assert verdict.decision == "auto"
    assert [c.path for c in verdict.changes] == ["thresholds.confidence"]


def test_review_autonomy_sends_a_change_to_review():
    rules = policy(**{"routing.temperature": {"autonomy": "review"}})
    verdict = evaluate(config(routing=config().routing.model_copy(update={"temperature": 0.5})), config(), rules)
    assert verdict.decision == "review"
    assert verdict.reasons == ["routing.temperature: autonomy review, proposal changes it from 1.0 to 0.5: review"]
    assert verdict.changes[0].autonomy == "review"
    assert evaluate(config(), config(), rules).decision == "auto"


def test_a_new_parameter_counts_as_changed_from_none():
    rules = policy(**{"resources.*": {"autonomy": "review"}})
    verdict = evaluate(config(resources={"classify.replicas": 3.0}), config(), rules)
    assert verdict.decision == "review"
    assert verdict.changes[0].before is None
    assert "sets it to 3.0 (new)" in verdict.reasons[0]


def test_refusal_outranks_review():
    rules = policy(cost_weight={"autonomy": "frozen"}, **{"thresholds.*": {"autonomy": "review"}})
    verdict = evaluate(config(cost_weight=3.0, thresholds={"confidence": 0.8}), config(), rules)
    assert verdict.decision == "refused"
    assert len(verdict.reasons) == 2


# -- steps ------------------------------------------------------------------------


def test_a_step_above_max_step_goes_to_review_by_default():
    verdict = evaluate(config(thresholds={"confidence": 0.9}), config(), policy(**{"thresholds.*": {"max_step": 0.1}}))
    assert verdict.decision == "review"
    assert verdict.config.thresholds == {"confidence": 0.9}
    assert verdict.reasons == ["thresholds.confidence: step 0.2 from 0.7 to 0.9 exceeds max_step 0.1: review"]


def test_a_step_above_max_step_is_clipped_when_the_policy_says_clip():
    rules = policy(**{"thresholds.*": {"max_step": 0.1, "over_step": "clip"}})
    up = evaluate(config(thresholds={"confidence": 0.9}), config(), rules)
    down = evaluate(config(thresholds={"confidence": 0.4}), config(), rules)
    assert up.decision == down.decision == "auto"
    assert up.config.thresholds["confidence"] == pytest.approx(0.8)
    assert down.config.thresholds["confidence"] == pytest.approx(0.6)
    assert up.reasons == ["thresholds.confidence: step 0.2 from 0.7 to 0.9 exceeds max_step 0.1, clipped to 0.8"]


def test_a_step_within_max_step_is_auto():
    verdict = evaluate(config(thresholds={"confidence": 0.8}), config(), policy(**{"thresholds.*": {"max_step": 0.1}}))
    assert verdict.decision == "auto"
    assert verdict.reasons == []


def test_over_step_refuse():
    rules = WorkflowPolicy(over_step="refuse", parameters={"thresholds.*": {"max_step": 0.1}})
    assert evaluate(config(thresholds={"confidence": 0.9}), config(), rules).decision == "refused"


# -- first version -----------------------------------------------------------------


def test_first_version_skips_steps_but_not_bounds_and_notes_frozen():
    rules = policy(cost_weight={"autonomy": "frozen"}, **{"thresholds.*": {"max": 0.95, "max_step": 0.01}})
    verdict = evaluate(config(thresholds={"confidence": 0.99}), None, rules)
    assert verdict.decision == "auto"
    assert verdict.config.thresholds == {"confidence": 0.95}
    assert "thresholds.confidence: 0.99 above max 0.95, clipped to 0.95" in verdict.reasons
    assert "cost_weight: frozen; the first version sets it to 1.0" in verdict.reasons
    assert not any("max_step" in r for r in verdict.reasons)
    assert all(c.before is None for c in verdict.changes)


# -- precedence ---------------------------------------------------------------------


def test_the_first_matching_pattern_wins():
    exact_first = policy(**{"thresholds.confidence": {"max": 0.5}, "thresholds.*": {"max": 0.9}})
    proposal = config(thresholds={"confidence": 0.8, "other": 0.95})
    verdict = evaluate(proposal, config(thresholds={"confidence": 0.8, "other": 0.95}), exact_first)
    assert verdict.config.thresholds == {"confidence": 0.5, "other": 0.9}
    glob_first = policy(**{"thresholds.*": {"max": 0.9}, "thresholds.conf*": {"max": 0.5}})
    assert glob_first.rule_for("thresholds.confidence")[0] == "thresholds.*"


def test_unmatched_paths_get_the_default_rule():
    rules = WorkflowPolicy(default={"autonomy": "review"})
    assert evaluate(config(cost_weight=2.0), config(), rules).decision == "review"
    assert evaluate(config(cost_weight=2.0), config(), WorkflowPolicy()).decision == "auto"


# -- bandit-derived parameters --------------------------------------------------------


def test_bandit_derived_parameters_are_not_clipped_but_reviewed():
    rules = policy(**{
        "routing.weights.*": {"max_step": 0.5, "over_step": "clip"},
        "routing.exploration": {"max": 0.5},
    })
    live = config(routing=bandit())
    proposal = config(routing=bandit(weights={"fast": 1.2, "strong": 0.5}, exploration=0.8))
    verdict = evaluate(proposal, live, rules)
    assert verdict.decision == "review"
    assert verdict.config == proposal
    assert verdict.config.routing.state_sha == "abc"
    assert len(verdict.reasons) == 2
    assert all("bandit" in r and "cannot be clipped" in r for r in verdict.reasons)
    assert verdict.reasons[0].startswith("routing.weights.fast: step 1.0 from 0.2 to 1.2")


def test_bandit_derived_parameters_are_refused_when_the_rule_says_refuse():
    rules = policy(**{"routing.exploration": {"max": 0.5, "out_of_bounds": "refuse"}})
    verdict = evaluate(config(routing=bandit(exploration=0.8)), config(routing=bandit()), rules)
    assert verdict.decision == "refused"


def test_softmax_weights_are_clipped():
    rules = policy(**{"routing.weights.*": {"max_step": 0.5, "over_step": "clip"}})
    proposal = config(routing=config().routing.model_copy(update={"weights": {"fast": 1.2, "strong": 0.5}}))
    verdict = evaluate(proposal, config(), rules)
    assert verdict.decision == "auto"
    assert verdict.config.routing.weights == {"fast": 0.5, "strong": 0.5}


def test_a_change_of_routing_kind_goes_to_review():
    verdict = evaluate(config(routing=bandit(weights={"fast": 0.0, "strong": 0.5})), config(), WorkflowPolicy())
    assert verdict.decision == "review"
    assert verdict.reasons[0] == "routing.kind: changes from softmax to bandit: review"
