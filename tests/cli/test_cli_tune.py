"""`flywheel tune WF --resources`: the CLI's plan of the agent deployments, and its errors."""

from __future__ import annotations

import os

from typer.testing import CliRunner

from flywheel.cli.main import app


def test_a_resource_plan_without_logged_agent_calls_says_so(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("FLYWHEEL_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # the packaged settings' ledger: ./.flywheel/ledger.db, empty
    done = CliRunner().invoke(app, ["tune", "ticket_triage", "--resources", "--quiet"])
    assert done.exit_code == 2 and "ticket_triage: no agent calls logged in the last 3600 s" in done.output
    assert "--resources" in CliRunner().invoke(app, ["tune", "--help"]).output
