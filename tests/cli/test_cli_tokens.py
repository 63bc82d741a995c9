"""`flywheel tokens create|list|revoke` on a temporary ledger, and the tokens `flywheel up` makes."""

from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.cli.tokens import cli_actor
from flywheel.cli.launcher import demo_token, prepare_ledger
from flywheel.services.settings import load_settings
from flywheel.ledger import Ledger

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("FLYWHEEL_DATABASE_URL", raising=False)
    monkeypatch.delenv("FLYWHEEL_ADMIN_TOKEN", raising=False)
    data = yaml.safe_load(Path("configs/app.yaml").read_text())
    data["database_url"] = f"sqlite:///{tmp_path / 'ledger.db'}"
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _ledger(config: Path) -> Ledger:
    return Ledger(load_settings(config).resolved_database_url())


def test_create_prints_the_secret_once_and_stores_its_hash(config: Path):
    result = runner.invoke(app, ["tokens", "create", "--role", "service", "--name", "checkout",
                                 "--reason", "checkout service", "--config", str(config)])
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("fw_") and "'checkout' (role service)" in result.output
    ledger = _ledger(config)
    info = ledger.token_principal(secret)
    assert info is not None and info.role == "service" and info.created_by == cli_actor()
    entry = ledger.audit_entries()[-1]
    assert (entry.actor, entry.action, entry.reason) == (cli_actor(), "token.create", "checkout service")
    ledger.dispose()
    listed = runner.invoke(app, ["tokens", "list", "--config", str(config)])
    assert listed.exit_code == 0 and "checkout" in listed.output and "active" in listed.output
    assert secret not in listed.output


def test_revoke_then_list_shows_it_revoked(config: Path):
    made = runner.invoke(app, ["tokens", "create", "--role", "mlops", "--name", "rev", "-c", str(config)])
    secret = made.stdout.strip().splitlines()[-1]
    result = runner.invoke(app, ["tokens", "revoke", "rev", "--reason", "left the team", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "revoked 'rev' (role mlops)" in result.output
    ledger = _ledger(config)
    assert ledger.token_principal(secret) is None
    assert ledger.audit_entries()[-1].action == "token.revoke"
    ledger.dispose()
    listed = runner.invoke(app, ["tokens", "list", "-c", str(config)])
    assert "rev" in listed.output and "revoked 20" in listed.output


def test_mistakes_are_named_and_exit_2(config: Path):
    bad_role = runner.invoke(app, ["tokens", "create", "--role", "root", "-c", str(config)])
    assert bad_role.exit_code == 2 and "role: unknown role 'root'" in bad_role.output
    runner.invoke(app, ["tokens", "create", "--role", "service", "--name", "x", "-c", str(config)])
    dup = runner.invoke(app, ["tokens", "create", "--role", "service", "--name", "x", "-c", str(config)])
    assert dup.exit_code == 2 and "name: a token named 'x' exists already" in dup.output
    unknown = runner.invoke(app, ["tokens", "revoke", "nobody", "--reason", "r", "-c", str(config)])
    assert unknown.exit_code == 2 and "no token named 'nobody'" in unknown.output
    no_reason = runner.invoke(app, ["tokens", "revoke", "x", "-c", str(config)])
    assert no_reason.exit_code != 0 and "--reason" in no_reason.output
    assert runner.invoke(app, ["tokens", "list", "-c", str(config)]).output.count("\n") == 2  # header + x


def test_up_prepares_the_ledger_with_one_admin_token_and_a_demo_token(config: Path, monkeypatch):
    settings = load_settings(config)
    first = prepare_ledger(settings)
    assert first is not None and prepare_ledger(settings) is None  # printed once: the next start has one
    demo = demo_token(settings)
    ledger = _ledger(config)
    assert ledger.token_principal(first).role == "admin"  # type: ignore[union-attr]
    info = ledger.token_principal(demo)
    assert info is not None and info.role == "service" and info.name.startswith("demo-")
    assert info.created_by == "flywheel up"
    ledger.dispose()
    monkeypatch.setenv("FLYWHEEL_ADMIN_TOKEN", "too-short")
    with pytest.raises(typer.Exit) as stopped:
        prepare_ledger(settings)
    assert stopped.value.exit_code == 2


def test_demo_needs_a_token(config: Path):
    result = runner.invoke(app, ["demo", "-c", str(config)], env={"FLYWHEEL_TOKEN": ""})
    assert result.exit_code == 2 and "a service token is needed" in result.output
