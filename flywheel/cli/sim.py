"""`flywheel bench sim`: the simulation benchmark of one scenario, with a progress bar and a table.

The command function is plain Typer; the CLI module registers it:

    bench_app.command("sim")(sim)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from flywheel.cli.format import fmt


def sim(
    scenario: str = typer.Option(..., "--scenario", "-s", help="Scenario name (in the settings' scenarios_dir) or path."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full result as JSON here."),
    runs: int = typer.Option(20000, help="Runs (ticks) to simulate."),
    seed: int = typer.Option(0, help="Seed of the learners; the world runs at the scenario's seed + this."),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="App settings file naming workflows_dir and scenarios_dir (default: packaged)."
    ),
) -> None:
    """Run the learning system on a simulated scenario against the best static config and an oracle."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flywheel.eval.bench_sim import run_sim
    from flywheel.services.settings import load_settings
    from flywheel.sim import load_scenario
    from flywheel.workflows.loading import ConfigError

    try:
        settings = load_settings(config)
        world = load_scenario(scenario, settings.simulator.scenarios_dir)
    except ConfigError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None

    console = Console()
    with Progress(
        TextColumn(f"[bold]{scenario}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as progress:
        task = progress.add_task("runs", total=runs)
        try:
            result = run_sim(world, runs, seed, workflows_dir=settings.workflows_dir,
                             progress=lambda done: progress.update(task, completed=done))
        except (ConfigError, ValueError) as e:
            typer.secho(str(e), fg="red", err=True)
            raise typer.Exit(2) from None
    console.print(render(result))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))
        console.print(f"wrote {json_out}")


def render(result: dict[str, Any]) -> Any:
    """Rich tables of one benchmark result: the headline figures, then one row per workflow."""
    from rich.console import Group
    from rich.table import Table

    rec = result.get("recovery")
    if rec is None:
        recovery = "n/a (no abrupt change)"
    elif rec["recovered"]:
        recovery = f"{rec['runs']} runs after {rec['event']['kind']} {rec['event']['model']} at {rec['event']['at_run']}"
    else:
        recovery = f"not recovered after {rec['event']['kind']} {rec['event']['model']} at {rec['event']['at_run']}"
    head = Table(title=f"{result['scenario']}: {result['runs']} runs, seed {result['seed']}, {result['wall_s']} s")
    head.add_column("figure")
    head.add_column("value", justify="right")
    for name, value in (
        ("regret (oracle - system)", fmt(result["regret"], 1)),
        ("static regret (oracle - best static)", fmt(result["static_regret"], 1)),
        ("regret ratio vs static", fmt(result["regret_ratio_vs_static"], 3)),
        ("recovery", recovery),
        ("human share", fmt(result["human_share"])),
        ("unattended error rate", fmt(result["unattended_error_rate"])),
        ("versions judged (served path)", ", ".join(f"{k} {v}" for k, v in result["served"]["versions_judged"].items())),
        ("runs/s (served path)", fmt(result["runs_per_s"], 1)),
        *((f"ECE of predicted quality, {wf}", ", ".join(f"{a} {fmt(v)}" for a, v in per_arm.items()))
          for wf, per_arm in result.get("calibration", {}).items()),
    ):
        head.add_row(name, value)
    per = Table()
    for col in ("workflow", "regret", "static", "static arm", "human", "err/target", "threshold", "drifts"):
        per.add_column(col)
    for wf, f in result["workflows"].items():
        per.add_row(
            wf,
            fmt(f["regret"], 1),
            fmt(f["static_regret"], 1),
            f["static_arm"],
            fmt(f["human_share"], 2),
            f"{f['unattended_error_rate']:.3f}/{f['target_error_rate']:.2f}",
            " ".join(f"{t['final']:.2f}" for t in f["thresholds"].values()),
            str(len(f["drift_events"])),
        )
    return Group(head, per)
