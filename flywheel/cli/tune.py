"""`flywheel tune WF`: a Ray Tune job over a workflow's config, into a proposal the governor judges.

`--resources`: a Tune job over the workflow's agent deployments' autoscaling instead, sized on
the load the ledger logged for the workflow's p95 latency target.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer


def tune(
    workflow: str = typer.Argument(..., help="Workflow to tune."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="App settings file."),
    trials: int = typer.Option(0, help="Trials (0: the settings' tuning.trials, or tuning.resources_trials)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress table while it runs."),
    resources: bool = typer.Option(
        False, "--resources",
        help="Plan the agent deployments' autoscaling (min/max replicas, target ongoing requests) for the "
        "workflow's targets.p95_latency_s on the logged load, instead of its thresholds and routing.",
    ),
) -> None:
    """Search the cost weight, exploration and thresholds on the logged outcomes (or, with
    --resources, the agents' autoscaling on the logged load); propose the best."""
    from flywheel.cli.main import _settings

    settings = _settings(config)
    try:
        if resources:
            from flywheel.services.resource_planning import plan_workflow_resources

            out = plan_workflow_resources(settings, workflow, trials=trials or None, progress=not quiet)
            typer.echo(plan_table(out["agents"]))
        else:
            from flywheel.services.tuning import tune_workflow

            out = tune_workflow(settings, workflow, trials=trials or None, progress=not quiet)
    except ValueError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(out, indent=2, default=str))


def plan_table(agents: list[dict[str, Any]]) -> str:
    """The chosen settings and the simulated p95 against the target, one agent a line."""
    lines = [f"{'agent':<12} {'min':>4} {'max':>4} {'target':>7} {'repl@mean':>9} {'repl@peak':>9} "
             f"{'p95@mean':>9} {'p95@peak':>9} {'target':>7}  meets"]
    for a in agents:
        lines.append(f"{a['agent']:<12} {a['min_replicas']:>4} {a['max_replicas']:>4} "
                     f"{a['target_ongoing_requests']:>7.3g} {a['replicas_mean']:>9} {a['replicas_peak']:>9} "
                     f"{a['sim_p95_mean_s']:>8.3f}s {a['sim_p95_peak_s']:>8.3f}s {a['p95_target_s']:>6.2f}s  "
                     f"{'yes' if a['meets'] else 'NO'}")
    return "\n".join(lines)
