"""Governance policy files: loading, errors that name the field, and the shipped policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.registry.learned_config import LearnedConfig
from flywheel.registry.judge import evaluate
from flywheel.registry.policy import PolicyBook, WorkflowPolicy, check_workflows, load_policies
from flywheel.workflows.loading import ConfigError, load_dir
from flywheel.workflows.spec import WorkflowSpec
from tests.registry.configs import bandit, policy

SHIPPED_POLICIES = Path("configs/policies.yaml")
SHIPPED_WORKFLOWS = Path("configs/workflows")


# -- precedence ----------------------------------------------------------------------------


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
