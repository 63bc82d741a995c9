"""`flywheel audit verify --config`: reads the ledger directly and names tampered entries."""

from pathlib import Path

import yaml
from sqlalchemy import text
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.services.settings import load_settings
from flywheel.ledger import Ledger

runner = CliRunner()


def test_audit_verify_passes_then_names_an_edited_and_a_deleted_entry(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("FLYWHEEL_DATABASE_URL", raising=False)
    data = yaml.safe_load(Path("configs/app.yaml").read_text())
    data["database_url"] = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = tmp_path / "app.yaml"
    config.write_text(yaml.safe_dump(data))
    ledger = Ledger(load_settings(config).resolved_database_url())
    ledger.upgrade()
    for i in range(5):
        ledger.append_audit(actor="olga", action="pin", subject=f"wf@v{i}", before=None, after=f"wf@v{i}",
                            reason=f"r{i}")

    ok = runner.invoke(app, ["audit", "verify", "--config", str(config)])
    assert ok.exit_code == 0 and "intact: 5 entries" in ok.output

    with ledger.engine.begin() as c:
        c.execute(text("UPDATE audit SET reason = 'nothing to see' WHERE id = 2"))
        c.execute(text("DELETE FROM audit WHERE id = 4"))
    bad = runner.invoke(app, ["audit", "verify", "--config", str(config)])
    assert bad.exit_code == 1
    assert "entry 2: hash mismatch" in bad.output and "BROKEN" in bad.output
    assert "entry 5: id gap after entry 3" in bad.output
    ledger.dispose()
