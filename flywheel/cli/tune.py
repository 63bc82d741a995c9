"""`flywheel tune WF`: a Ray Tune job over a workflow's config, into a proposal the governor judges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def tune(
    workflow: str = typer.Argument(..., help="Workflow to tune."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="App settings file."),
    trials: int = typer.Option(0, help="Trials (0: the settings' tuning.trials)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress table while it runs."),
) -> None:
    """Search the cost weight, exploration and thresholds on the logged outcomes; propose the best."""
    from flywheel.cli.main import _settings
    from flywheel.services.tuning import tune_workflow

    settings = _settings(config)
    try:
        out = tune_workflow(settings, workflow, trials=trials or None, progress=not quiet)
    except ValueError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(out, indent=2, default=str))
