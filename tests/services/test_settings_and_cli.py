"""App settings errors at start, and the CLI's commands that need no service."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.services.runtime import load_workflows
from flywheel.services.settings import load_settings, settings_from
from flywheel.workflows.loading import ConfigError, packaged_configs

runner = CliRunner()


def _settings_file(tmp_path: Path, mutate) -> Path:
    """The shipped app.yaml, changed by `mutate`, in tmp_path (inputs left to the packaged defaults)."""
    data = yaml.safe_load((packaged_configs() / "app.yaml").read_text())
    data.pop("workflows_dir")
    data["simulator"].pop("scenarios_dir")
    data.pop("governance")
    mutate(data)
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(autouse=True)
def _no_flywheel_environment(monkeypatch):
    """These tests set the FLYWHEEL_ variables they mean; none leak in from the shell."""
    for name in ("FLYWHEEL_DATABASE_URL", "FLYWHEEL_MLFLOW_URI"):
        monkeypatch.delenv(name, raising=False)


def test_shipped_settings_load_and_make_paths_absolute():
    s = load_settings("configs/app.yaml").absolute(Path("/srv/fw"))
    assert set(s.agents) == {"fast", "balanced", "strong", "frontier"}
    # inputs against the settings file's folder, state against the working directory (here /srv/fw)
    assert s.workflows_dir == str(packaged_configs().resolve() / "workflows")
    assert s.simulator.scenarios_dir == str(packaged_configs().resolve() / "scenarios")
    assert s.governance.policies == str(packaged_configs().resolve() / "policies.yaml")
    assert s.database_url == "sqlite:////srv/fw/.flywheel/ledger.db"
    assert s.learning.mlflow_tracking_uri == "sqlite:////srv/fw/.flywheel/mlflow.db"
    assert s.learning.mlflow_artifacts == "/srv/fw/.flywheel/mlartifacts"


def test_no_file_named_means_the_packaged_defaults():
    assert load_settings() == load_settings(packaged_configs() / "app.yaml")
    assert Path(load_settings().workflows_dir) == packaged_configs().resolve() / "workflows"


def test_input_paths_are_relative_to_the_settings_file(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    path = _settings_file(folder, lambda d: d.update(workflows_dir="wf", database_url="sqlite:///state/l.db"))
    monkeypatch.chdir(tmp_path)
    s = load_settings(path)
    assert s.workflows_dir == str(folder.resolve() / "wf")
    assert s.simulator.scenarios_dir == str(packaged_configs() / "scenarios")  # left out: the default
    assert s.absolute().database_url == f"sqlite:///{tmp_path.resolve() / 'state' / 'l.db'}"


def test_database_url_from_environment(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", "postgresql+psycopg://u@h/db")
    s = load_settings("configs/app.yaml")
    assert s.database_url == s.resolved_database_url() == "postgresql+psycopg://u@h/db"
    assert s.absolute().database_url == "postgresql+psycopg://u@h/db"


def test_empty_environment_variable_is_ignored(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", "")
    assert load_settings("configs/app.yaml").database_url == "sqlite:///.flywheel/ledger.db"


def test_mlflow_uri_from_its_documented_variable(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_MLFLOW_URI", "http://mlflow:5000")
    s = load_settings("configs/app.yaml")
    assert s.learning.mlflow_tracking_uri == "http://mlflow:5000"
    assert s.learning.publish_every_s == 10  # the rest of learning still comes from the file
    monkeypatch.setenv("FLYWHEEL_LEARNING__MLFLOW_TRACKING_URI", "http://full-name:5000")
    assert load_settings("configs/app.yaml").learning.mlflow_tracking_uri == "http://full-name:5000"


def test_nested_environment_variables_override_the_file(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_LEARNING__PUBLISH_EVERY_S", "2")
    monkeypatch.setenv("FLYWHEEL_SERVE__PORT", "9001")
    monkeypatch.setenv("FLYWHEEL_SEED", "7")
    s = load_settings("configs/app.yaml")
    assert (s.learning.publish_every_s, s.serve.port, s.seed) == (2.0, 9001, 7)
    assert s.learning.n_bits == 14 and s.serve.host == "127.0.0.1"  # siblings kept from the file
    built = settings_from({"agents": {"a": {"backend": "sim", "model": "fast"}}, "seed": 1})
    assert (built.seed, built.serve.port) == (7, 9001)  # a dict is overridden the same way


def test_bad_environment_value_fails_naming_file_and_field(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_SERVE__PORT", "0")
    with pytest.raises(ConfigError, match=r"configs/app.yaml: serve.port: Input should be greater"):
        load_settings("configs/app.yaml")
    monkeypatch.setenv("FLYWHEEL_SERVE__PORT", "8000")
    monkeypatch.setenv("FLYWHEEL_LEARNING__COLOUR", "red")
    with pytest.raises(ConfigError, match=r"learning.colour: Extra inputs are not permitted"):
        load_settings("configs/app.yaml")


@pytest.mark.parametrize(
    "text, reason",
    [("agents: [1, 2\n", "not valid YAML"), ("- a\n- b\n", "not a YAML mapping")],
)
def test_unreadable_settings_file_fails_naming_it(tmp_path, text, reason):
    path = tmp_path / "app.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=reason) as err:
        load_settings(path)
    assert str(path) in str(err.value)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "mutate, field, reason",
    [
        (lambda d: d.update(colour="red"), "colour", "Extra inputs are not permitted"),
        (lambda d: d["agents"]["fast"].update(backend="magic"), "agents.fast.backend", "Input should be 'sim', 'replay', 'openai' or 'vllm'"),
        (lambda d: d["agents"]["fast"].update(backend="replay"), "agents.fast", "a replay agent needs the path"),
        (lambda d: d["serve"].update(port=0), "serve.port", "greater than or equal to 1"),
    ],
)
def test_bad_settings_fail_naming_file_field_reason(tmp_path, mutate, field, reason):
    path = _settings_file(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(path) in str(err.value) and field in str(err.value) and reason in str(err.value)
    result = runner.invoke(app, ["up", "--config", str(path), "--no-demo"])
    assert result.exit_code == 2
    assert field in result.output


def test_workflow_naming_an_unknown_agent_fails_at_start(tmp_path):
    path = _settings_file(tmp_path, lambda d: d["agents"].pop("frontier"))
    with pytest.raises(ValueError, match=r"workflows/\w+\.yaml: steps.route.arms: no agent named \['frontier'\]"):
        load_workflows(load_settings(path))


def test_workflows_list_reads_the_config():
    result = runner.invoke(app, ["workflows", "list"])
    assert result.exit_code == 0, result.output
    assert "ticket_triage" in result.output and "confidence>=0.7" in result.output
    assert "report_generation" in result.output


def test_replay_backend_from_settings(tmp_path):
    import asyncio

    from flywheel.services.agents import make_backend
    from flywheel.services.settings import AgentSettings, SimulatorSettings
    from flywheel.workflows.agent_io import AgentError, AgentRequest

    table = tmp_path / "t.csv"
    table.write_text("prompt,weak,strong,weak|total_cost,strong|total_cost\nwhat is 2+2,0.0,1.0,0.1,2.0\n")
    agent = make_backend(AgentSettings(backend="replay", model="strong", data=str(table)), SimulatorSettings())
    result = asyncio.run(agent.run(AgentRequest("wf", "r1", "what is 2+2", {})))
    assert result.cost == 2.0 and result.model == "strong"
    with pytest.raises(AgentError, match="prompt"):
        asyncio.run(agent.run(AgentRequest("wf", "r2", "unknown prompt", {})))
