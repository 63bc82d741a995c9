"""Workflow specs and config files: the shipped ones load; bad ones fail naming file, field, reason."""

from pathlib import Path

import pytest
import yaml

from flywheel.workflows.loading import ConfigError, load_dir, load_model
from flywheel.workflows.spec import WorkflowSpec

SHIPPED = Path("configs/workflows")


def test_shipped_workflows_load():
    specs = load_dir(SHIPPED, WorkflowSpec)
    assert set(specs) == {"ticket_triage", "report_generation"}
    triage = specs["ticket_triage"]
    assert triage.arms == ["fast", "balanced", "strong", "frontier"]
    assert triage.gates == {"confidence": 0.7}
    assert triage.targets.max_unattended_error_rate == 0.05
    assert [s.kind for s in triage.steps] == ["route", "agent", "gate", "human", "finish"]


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((SHIPPED / "ticket_triage.yaml").read_text())
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "mutate, field, reason",
    [
        (lambda d: d.update(colour="blue"), "colour", "Extra inputs are not permitted"),
        (lambda d: d["objective"].update(cost_weight=-1), "objective.cost_weight", "greater than or equal to 0"),
        (lambda d: d["steps"][2].update(threshold=1.5), "steps.2.gate.threshold", "less than or equal to 1"),
        (lambda d: d["steps"][2].update(on_fail="nowhere"), "<file>", "unknown step 'nowhere'"),
        (lambda d: d["routing"]["weights"].pop("fast"), "<file>", "routing.weights"),
        (lambda d: d["features"]["fields"].append("mood"), "<file>", "'mood' is not a declared input"),
        (lambda d: d["steps"][0].update(kind="teleport"), "steps.0", "does not match any of the expected tags"),
    ],
)
def test_bad_workflow_names_file_field_and_reason(tmp_path, mutate, field, reason):
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_model(path, WorkflowSpec)
    message = str(err.value)
    assert str(path) in message
    assert field in message
    assert reason in message


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_model(tmp_path / "missing.yaml", WorkflowSpec)
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_model(bad, WorkflowSpec)


ROUTE = {"id": "route", "kind": "route", "arms": ["fast", "balanced", "strong", "frontier"]}
AGENT = {"id": "classify", "kind": "agent"}
FINISH = {"id": "file", "kind": "finish"}


def _steps(*steps: dict):
    return lambda d: d.update(steps=list(steps))


@pytest.mark.parametrize(
    "mutate, step_id, reason",
    [
        pytest.param(
            _steps(ROUTE, AGENT, {"id": "review", "kind": "human"},
                   {"id": "late_gate", "kind": "gate", "threshold": 0.5, "on_pass": "file", "on_fail": "file"},
                   FINISH),
            "late_gate", "follows human step 'review'", id="gate-after-human",
        ),
        pytest.param(
            _steps({"id": "review", "kind": "human", "next": "route"}, ROUTE, AGENT, FINISH),
            "route", "follows human step 'review'", id="route-after-human",
        ),
        pytest.param(
            _steps(ROUTE, {"id": "first", "kind": "agent"}, {"id": "review", "kind": "human"},
                   {"id": "redo", "kind": "agent"}, FINISH),
            "redo", "follows human step 'review'", id="agent-after-human",
        ),
        pytest.param(
            _steps({"id": "early", "kind": "agent"}, ROUTE, FINISH),
            "early", "without passing the route step", id="agent-before-route",
        ),
        pytest.param(
            _steps({"id": "skip", "kind": "gate", "threshold": 0.5, "on_pass": "answer", "on_fail": "route"},
                   ROUTE, {"id": "answer", "kind": "agent"}, FINISH),
            "answer", "without passing the route step", id="gate-jumps-past-route",
        ),
        pytest.param(
            _steps(ROUTE, AGENT,
                   {"id": "confidence", "kind": "gate", "threshold": 0.7, "on_pass": "file", "on_fail": "route"},
                   FINISH),
            "route", "the step graph loops", id="gate-loops-back",
        ),
        pytest.param(
            _steps(ROUTE, AGENT, {"id": "review", "kind": "human", "next": "review"}, FINISH),
            "review", "the step graph loops", id="human-loops-to-itself",
        ),
        pytest.param(
            _steps(ROUTE, AGENT, {"id": "review", "kind": "human", "next": "nowhere"}, FINISH),
            "review", "unknown step 'nowhere'", id="next-unknown",
        ),
        pytest.param(
            _steps(ROUTE, AGENT,
                   {"id": "confidence", "kind": "gate", "threshold": 0.7, "on_pass": "nowhere", "on_fail": "file"},
                   FINISH),
            "confidence", "unknown step 'nowhere'", id="on-pass-unknown",
        ),
    ],
)
def test_graph_the_engine_cannot_run_fails_naming_the_step(tmp_path, mutate, step_id, reason):
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_model(path, WorkflowSpec)
    message = str(err.value)
    assert f"step {step_id!r}" in message
    assert reason in message

