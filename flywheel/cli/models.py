"""`flywheel models list|prepare`: the served models of models.yaml, and their weights made loadable once."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

models_app = typer.Typer(help="Served models (configs/models.yaml) and their weights.", no_args_is_help=True)
ModelsOpt = typer.Option(None, "--models", "-m", help="Models file (default: the packaged models.yaml).")


def _load(path: Optional[Path]):
    from flywheel.services.models import load_models
    from flywheel.workflows.loading import ConfigError

    try:
        return load_models(path)
    except ConfigError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None


@models_app.command("list")
def list_models(models: Optional[Path] = ModelsOpt) -> None:
    """Each model: where its weights come from, what it runs on, whether it is prepared."""
    from flywheel.services.model_weights import is_prepared

    for m in _load(models).models:
        where = {"local": lambda s: s.path, "hub": lambda s: s.model_id,
                 "package": lambda s: ", ".join(s.packages)}[m.source.kind](m.source)
        state = "fetched by vLLM" if m.source.kind == "hub" else "prepared" if is_prepared(m) else "not prepared"
        typer.echo(f"{m.name}\t{m.source.kind}: {where}\t{m.accelerator.type} x{m.accelerator.count}\t{state}")


@models_app.command("prepare")
def prepare(
    names: Optional[list[str]] = typer.Argument(None, help="Models to prepare (default: every CPU model)."),
    models: Optional[Path] = ModelsOpt,
) -> None:
    """Fetch package-shipped weights (pinned, sha256 checked) and convert them once into the cache."""
    from flywheel.services.model_weights import WeightsError, prepare as prepare_model

    file = _load(models)
    try:
        chosen = [file.get(n) for n in names] if names else [m for m in file.models if m.accelerator.type == "cpu"]
    except KeyError as e:
        typer.secho(str(e.args[0]), fg="red", err=True)
        raise typer.Exit(2) from None
    for m in chosen:
        try:
            typer.echo(f"{m.name}: {prepare_model(m, log=typer.echo)}")
        except WeightsError as e:
            typer.secho(f"{m.name}: {e}", fg="red", err=True)
            raise typer.Exit(1) from None
