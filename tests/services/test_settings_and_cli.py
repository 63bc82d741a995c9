"""App settings errors at start, and the CLI's commands that need no service."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.services.runtime import load_workflows
from flywheel.services.settings import load_settings
from flywheel.workflows.loading import ConfigError

runner = CliRunner()


def _settings_file(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(Path("configs/app.yaml").read_text())
    mutate(data)
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_settings_load_and_make_paths_absolute():
    s = load_settings("configs/app.yaml").absolute(Path("/srv/fw"))
    assert set(s.agents) == {"fast", "balanced", "strong", "frontier"}
    assert s.workflows_dir == "/srv/fw/configs/workflows"
    assert s.database_url == "sqlite:////srv/fw/.flywheel/ledger.db"


def test_database_url_from_environment(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert load_settings("configs/app.yaml").absolute().database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    "mutate, field, reason",
    [
        (lambda d: d.update(colour="red"), "colour", "Extra inputs are not permitted"),
        (lambda d: d["agents"]["fast"].update(backend="magic"), "agents.fast.backend", "Input should be 'sim' or 'replay'"),
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
