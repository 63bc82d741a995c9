"""`flywheel runs explain RUN_ID`: why the router chose a run's arm (the run's trace, `explanation`)."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import typer


def runs_explain(
    run_id: str,
    url: str = typer.Option("http://127.0.0.1:8000", help="Base URL of the service."),
    token: Optional[str] = typer.Option(None, "--token", help="API token (default: $FLYWHEEL_TOKEN)."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw JSON."),
) -> None:
    """Each arm's score, the runner-up and the features that decided the run's route."""
    import httpx

    token = token or os.environ.get("FLYWHEEL_TOKEN")
    r = httpx.get(f"{url}/v1/runs/{run_id}/trace", timeout=10,
                  headers={"Authorization": f"Bearer {token}"} if token else {})
    if r.status_code != 200:
        typer.secho(f"{r.status_code}: {r.text}", fg="red", err=True)
        raise typer.Exit(1)
    trace = r.json()
    ex = trace.get("explanation")
    if as_json:
        typer.echo(json.dumps(ex, indent=2))
        return
    if ex is None:
        typer.echo(f"{run_id}: decided by {trace['config_version']} with no learned router to explain")
        return
    typer.echo(render(run_id, trace["config_version"], ex))


def render(run_id: str, decided_by: str, ex: dict[str, Any]) -> str:
    """The explanation as plain text."""
    lines = [f"{run_id}: {ex['arm']} (decided by {decided_by}; explained with {ex['state_version']}"
             + ("" if ex["exact"] else ", a later version: the figures are that version's") + ")"]
    lines.append(f"  {'arm':<16}{'score':>9}{'quality':>9}{'± sd':>8}{'cost':>10}{'latency s':>11}")
    for arm, a in sorted(ex["arms"].items(), key=lambda kv: -kv[1]["score"]):
        lines.append(f"  {arm:<16}{a['score']:>9.3f}{a['quality']:>9.3f}{a['quality_sd']:>8.3f}"
                     f"{a['cost']:>10.4g}{a['latency_s']:>11.3g}")
    if ex.get("runner_up"):
        lead = ex["lead"]
        lines.append(f"  over {ex['runner_up']}: score {lead['score']:+.3f} = quality {lead['quality']:+.3f} "
                     f"+ cost {lead['cost']:+.3f} + latency {lead['latency']:+.3f} + optimism {lead['optimism']:+.3f}")
        lines.append("  features that decided it (weight x value, chosen - runner-up, in the logit):")
        for c in ex["contributions"]:
            lines.append(f"    {c['contribution']:+.3f}  {c['feature']}")
    return "\n".join(lines)
