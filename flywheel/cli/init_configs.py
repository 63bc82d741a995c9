"""`flywheel init [DIR]`: editable copies of the packaged default configs.

After `flywheel init DIR`, `flywheel up --config DIR/app.yaml` serves from the copies:
app.yaml names its workflows, scenarios and policies relative to its own folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from flywheel.workflows.loading import packaged_configs


def copy_defaults(target: Path, *, force: bool = False) -> list[Path]:
    """Copy every packaged config file into `target`, keeping the layout; returns the files written.

    Raises FileExistsError naming the files already there, unless `force`.
    """
    source = packaged_configs()
    pairs = [(p, target / p.relative_to(source)) for p in sorted(source.rglob("*.yaml")) if p.is_file()]
    existing = [dst for _, dst in pairs if dst.exists()]
    if existing and not force:
        raise FileExistsError(
            "these files exist (--force overwrites them):\n  " + "\n  ".join(str(p) for p in existing)
        )
    for src, dst in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return [dst for _, dst in pairs]


def init(
    directory: Path = typer.Argument(Path("configs"), help="Folder to write the copies into."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that exist."),
) -> None:
    """Write editable copies of the default configs (app.yaml, policies, workflows, scenarios, serve.yaml)."""
    try:
        written = copy_defaults(directory, force=force)
    except FileExistsError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(1) from None
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"serve them with: flywheel up --config {directory / 'app.yaml'}")
