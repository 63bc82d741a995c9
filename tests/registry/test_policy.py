"""Governance policy: bounds, steps, autonomy, precedence, bandit-derived parameters, loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.registry.learned_config import LearnedConfig, RoutingConfig
from flywheel.registry.policy import (
    PolicyBook,
    WorkflowPolicy,
    check_workflows,
    diff,
    evaluate,
    load_policies,
    parameters,
)
from flywheel.workflows.loading import ConfigError, load_dir
from flywheel.workflows.spec import WorkflowSpec

SHIPPED_POLICIES = Path("configs/policies.yaml")
SHIPPED_WORKFLOWS = Path("configs/workflows")


def config(**update) -> LearnedConfig:
    base = LearnedConfig(
        workflow="wf",
        version="wf@1",
        thresholds={"confidence": 0.7},
        routing=RoutingConfig(weights={"fast": 0.0, "strong": 0.5}, temperature=1.0, exploration=0.1),
        cost_weight=1.0,
    )
    return base.model_copy(update=update)


def bandit(**routing) -> RoutingConfig:
    values = {"kind": "bandit", "weights": {"fast": 0.2, "strong": 0.5}, "exploration": 0.1, "state_sha": "abc"}
    return RoutingConfig(**(values | routing))


def policy(**parameters) -> WorkflowPolicy:
    return WorkflowPolicy(parameters=parameters)


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


def test_an_exact_path_after_a_glob_that_matches_it_is_an_error():
    with pytest.raises(ValueError, match="never applies"):
        policy(**{"thresholds.*": {"max": 0.9}, "thresholds.confidence": {"max": 0.5}})


def test_a_workflow_entry_comes_before_the_default_patterns():
    book = PolicyBook(
        default={
            "over_step": "refuse",
            "parameters": {"thresholds.*": {"max": 0.9}, "cost_weight": {"autonomy": "frozen"}},
        },
        workflows={"wf": {"parameters": {"thresholds.*": {"max": 0.5}}}},
    )
    wf = book.for_workflow("wf")
    assert wf.rule_for("thresholds.confidence")[1].max == 0.5
    assert wf.rule_for("cost_weight")[1].autonomy == "frozen"
    assert wf.over_step == "refuse"
    assert book.for_workflow("unknown").rule_for("thresholds.x")[1].max == 0.9


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


# -- loading ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, field, reason",
    [
        ("default:\n  parameters:\n    thresholds.*: {min: 0.9, max: 0.3}\n",
         "default.parameters.thresholds.*", "min 0.9 is above max 0.3"),
        ("workflows:\n  wf:\n    parameters:\n      cost_weight: {max_step: 0}\n",
         "workflows.wf.parameters.cost_weight.max_step", "greater than 0"),
        ("workflows:\n  wf:\n    parameters:\n      cost_weight: {autonomy: maybe}\n",
         "workflows.wf.parameters.cost_weight.autonomy", "'auto', 'review' or 'frozen'"),
        ("default:\n  parameters:\n    threshold.*: {max: 0.9}\n",
         "default.parameters", "matches no parameter"),
        ("default:\n  colour: red\n", "default.colour", "Extra inputs"),
    ],
)
def test_loading_errors_name_file_and_field(tmp_path, text, field, reason):
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_policies(path)
    assert err.value.path == str(path)
    assert any(f == field and reason in r for f, r in err.value.problems), err.value.problems


def test_loading_names_an_unknown_workflow(tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text("workflows:\n  ticket_triag: {}\n")
    with pytest.raises(ConfigError) as err:
        load_policies(path, workflows=["ticket_triage"])
    assert err.value.problems == [("workflows.ticket_triag", "no workflow named 'ticket_triag' (known: ticket_triage)")]
    assert str(path) in str(err.value)
    check_workflows(load_policies(path), ["ticket_triag"])  # no error


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_policies(tmp_path / "nope.yaml")


# -- the shipped policy file ---------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    specs = {spec.name: spec for spec in load_dir(SHIPPED_WORKFLOWS, WorkflowSpec).values()}
    return load_policies(SHIPPED_POLICIES, workflows=specs), specs


def test_shipped_policies_cover_the_shipped_workflows(shipped):
    book, specs = shipped
    assert set(book.workflows) == set(specs) == {"ticket_triage", "report_generation"}
    for name, spec in specs.items():
        wf = book.for_workflow(name)
        bounds = spec.targets.threshold_bounds
        for gate in spec.gates:
            pattern, rule = wf.rule_for(f"thresholds.{gate}")
            assert pattern is not None, (name, gate)
            assert (rule.min, rule.max, rule.max_step, rule.autonomy) == (bounds.low, bounds.high, 0.1, "auto")
            assert rule.over_step == "clip"
        for arm in spec.arms:
            rule = wf.rule_for(f"routing.weights.{arm}")[1]
            assert (rule.autonomy, rule.max_step, rule.over_step) == ("auto", 0.5, "review")
        assert wf.rule_for("cost_weight")[1].autonomy == "frozen"
        assert wf.rule_for("routing.temperature")[1].autonomy == "review"
        assert wf.rule_for("resources.classify.replicas")[1].autonomy == "review"
        assert wf.rule_for("routing.exploration")[1].max == 0.5


def test_shipped_policies_let_ordinary_learner_versions_go_live(shipped):
    book, specs = shipped
    for name, spec in specs.items():
        gate = next(iter(spec.gates))
        weights = {arm: 0.3 for arm in spec.arms}
        live = LearnedConfig(workflow=name, thresholds={gate: 0.6}, cost_weight=spec.objective.cost_weight,
                             routing=bandit(weights=weights, exploration=0.05))
        nudged = live.model_copy(update={
            "thresholds": {gate: 0.65},
            "routing": bandit(weights={arm: 0.4 for arm in spec.arms}, exploration=0.3, state_sha="def"),
        })
        policy_ = book.for_workflow(name)
        assert evaluate(nudged, live, policy_).decision == "auto", evaluate(nudged, live, policy_).reasons
        assert evaluate(live, None, policy_).decision == "auto"
        jump = evaluate(nudged.model_copy(update={"thresholds": {gate: 0.85}}), live, policy_)
        assert jump.decision == "auto" and jump.config.thresholds[gate] == pytest.approx(0.7)  # clipped
        leap = nudged.model_copy(update={"routing": bandit(weights={arm: 1.0 for arm in spec.arms})})
        assert evaluate(leap, live, policy_).decision == "review"  # evidence jumped: a person looks
        assert evaluate(live.model_copy(update={"cost_weight": 1.0}), live, policy_).decision == "refused"
