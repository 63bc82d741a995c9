"""`flywheel learn WF --from FILE` (a warm start, judged by policy) and `flywheel export WF --out FILE`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

ConfigOpt = typer.Option(None, "--config", "-c", help="App settings file.")


def learn(
    workflow: str = typer.Argument(..., help="Workflow whose router to fit."),
    source: Path = typer.Option(..., "--from", help="A RouterBench wide table (.csv, .csv.gz, .parquet) or a "
                                                     "logged-outcomes export (.jsonl, .jsonl.gz, .parquet)."),
    config: Optional[Path] = ConfigOpt,
    publish: bool = typer.Option(True, "--publish/--no-publish",
                                 help="Register the version through policy now (else it waits in the outbox)."),
) -> None:
    """Fit the workflow's router offline on the file and propose it as a version through the governor."""
    from flywheel.cli.main import _settings
    from flywheel.services.warm_start import warm_start

    settings = _settings(config)
    try:
        out = warm_start(settings, workflow, source, publish=publish)
    except ValueError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(out, indent=2))


def export(
    workflow: str = typer.Argument(..., help="Workflow whose outcomes to export."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write: .jsonl, .jsonl.gz or .parquet."),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Write the workflow's logged decisions with their outcomes and propensities (a warm start elsewhere)."""
    from flywheel.cli.main import _settings
    from flywheel.services.warm_start import export as export_rows

    settings = _settings(config)
    try:
        n = export_rows(settings, workflow, out)
    except ValueError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {n} outcomes of {workflow} to {out}")
