"""`flywheel bench replay`: the learning router on recorded outcomes (RouterBench format).

The command function is plain Typer; the CLI module registers it:

    bench_app.command("replay")(replay)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from flywheel.cli.format import fmt


def replay(
    data: Path = typer.Option(..., "--data", "-d", help="Table of outcomes: .csv, .csv.gz or .parquet (RouterBench format)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full result as JSON here."),
    seed: int = typer.Option(0, help="Seed of the prompt order and of the router's exploration."),
    features: str = typer.Option("auto", help="auto (embeddings if the `embeddings` extra is installed), embeddings or hashed."),
    full: bool = typer.Option(True, "--full/--no-full", help="Also run the full-feedback variant."),
    workers: int = typer.Option(2, help="Passes run side by side in this many processes."),
    warm_start: float = typer.Option(0.0, "--warm-start", help="Learn this fraction of the shuffled stream first, "
                                     "with every model's outcome; measure on the rest."),
) -> None:
    """Stream the table through the learning router (progressive validation, bandit feedback) over a sweep of cost weights."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flywheel.eval.bench_replay import run_bench
    from flywheel.learners.features import embeddings_available
    from flywheel.eval.routerbench import load_routerbench

    console = Console()
    try:
        table = load_routerbench(data)
    except ValueError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None
    if features == "auto" and not embeddings_available():
        console.print("[yellow]the `embeddings` extra is not installed: hashed words + text statistics only[/]")
    feedback = ("bandit", "full") if full else ("bandit",)
    with Progress(
        TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as progress:
        tasks = {fb: progress.add_task(f"{data.name} {fb} feedback: passes", total=None) for fb in feedback}

        def tick(fb: str, done: int, total: int) -> None:
            progress.update(tasks[fb], completed=done, total=total)

        try:
            result = run_bench(table, seed=seed, features=features, feedback=feedback, workers=workers, progress=tick,
                               warm_start=warm_start)
        except ValueError as e:
            typer.secho(str(e), fg="red", err=True)
            raise typer.Exit(2) from None
    console.print(render(result))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))
        console.print(f"wrote {json_out}")


def render(result: dict[str, Any]) -> Any:
    """Rich tables of one result: the figures per feedback, then the points of the sweep."""
    from rich.console import Group
    from rich.table import Table

    two = len(result["models"]) == 2
    keys = ["apgr", "cpt50", "cpt80"] if two else ["aiq", "cost_to_95pct_best_frac", "quality_at_tenth_cost"]
    warm = (f", warm start on {result['warm_start_rows']}, measured on {result['n_measured']}"
            if result.get("warm_start") else "")
    head = Table(title=f"{Path(result['table']).name}: {result['n_prompts']} prompts, seed {result['seed']}, "
                       f"{result['features']}{warm}, {result['wall_seconds']:.0f} s")
    head.add_column("feedback")
    for k in keys + [f"{keys[0]}, 1st half", f"{keys[0]}, 2nd half", "passes", "seconds"]:
        head.add_column(k, justify="right")
    for name, fig in (("bandit", result), ("full", result.get("full_feedback"))):
        if fig and keys[0] in fig:
            head.add_row(name, *[fmt(fig[k]) for k in keys], *[fmt(h[keys[0]]) for h in fig["halves"]], str(fig["passes"]), fmt(fig["seconds"], 1))
    models = Table(title="models")
    for col in ("model", "quality", "mean cost"):
        models.add_column(col, justify="right" if col != "model" else "left")
    for m, v in result["models"].items():
        models.add_row(m, fmt(v["quality"]), f"{v['cost']:.4g}")
    models.add_row("oracle", fmt(result["oracle_quality"]), "")
    points = Table(title="sweep (bandit feedback | full feedback)")
    for col in ("cost weight", "cost", "quality", "explored", "cost (full)", "quality (full)"):
        points.add_column(col, justify="right")
    full = {p["cost_weight"]: p for p in result.get("full_feedback", {}).get("points", [])}
    bandit = {p["cost_weight"]: p for p in result.get("points", [])}
    for w in sorted(set(bandit) | set(full)):
        b, f = bandit.get(w), full.get(w)
        points.add_row(fmt(w), fmt(b and b["cost"]), fmt(b and b["quality"]), fmt(b and b["explored"], 2),
                       fmt(f and f["cost"]), fmt(f and f["quality"]))
    ece = Table(title="calibration: ECE of predicted quality per arm, chosen decisions (bandit | full)")
    for col in ("model", "bandit", "full"):
        ece.add_column(col, justify="right" if col != "model" else "left")
    eb, ef = result.get("ece_per_arm", {}), result.get("full_feedback", {}).get("ece_per_arm", {})
    for m in result["models"]:
        ece.add_row(m, fmt(eb.get(m)), fmt(ef.get(m)))
    return Group(head, models, points, ece)
