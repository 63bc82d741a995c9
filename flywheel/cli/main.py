"""The `flywheel` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Flywheel: adaptive, self-optimizing LLM workflows.", no_args_is_help=True)
runs_app = typer.Typer(help="Inspect runs.", no_args_is_help=True)
workflows_app = typer.Typer(help="Inspect workflows.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks of the learning system.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(workflows_app, name="workflows")
app.add_typer(bench_app, name="bench")

DEFAULT_URL = "http://127.0.0.1:8000"
ConfigOpt = typer.Option(
    None, "--config", "-c", help="App settings file (default: the packaged defaults; see flywheel init)."
)
TokenOpt = typer.Option(
    None, "--token", envvar="FLYWHEEL_TOKEN", help="API token (flywheel tokens create); $FLYWHEEL_TOKEN."
)


def _auth(token: Optional[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _settings(path: Optional[Path]):
    from flywheel.services.settings import load_settings
    from flywheel.workflows.loading import ConfigError

    try:
        return load_settings(path)
    except ConfigError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None


@app.command()
def up(
    config: Optional[Path] = ConfigOpt,
    demo: bool = typer.Option(True, "--demo/--no-demo", help="Drive the simulator scenario against the service."),
    runs: int = typer.Option(0, help="Demo runs (0: the scenario's length)."),
    concurrency: int = typer.Option(8, help="Concurrent demo clients."),
    local: bool = typer.Option(False, "--local", help="Serve without Ray: one process, in-process agents."),
    dashboard: bool = typer.Option(False, "--dashboard", help="Start Ray's dashboard."),
) -> None:
    """Start the service on the settings' defaults, print its URLs and drive the demo; Ctrl-C stops all."""
    settings = _settings(config)
    url = f"http://{settings.serve.host}:{settings.serve.port}"
    if local:
        from flywheel.cli.local_server import serve_locally

        serve_locally(settings, demo=demo, runs=runs, concurrency=concurrency)
        return
    from flywheel.cli.launcher import serve_on_ray

    serve_on_ray(settings, url=url, demo=demo, runs=runs, concurrency=concurrency, dashboard=dashboard)


@app.command()
def demo(
    url: str = typer.Option(DEFAULT_URL, help="Base URL of a running service."),
    config: Optional[Path] = ConfigOpt,
    scenario: Optional[str] = typer.Option(None, help="Scenario (default: the settings')."),
    runs: int = typer.Option(2000, help="Runs to drive (0: the scenario's length)."),
    concurrency: int = typer.Option(8, help="Concurrent clients."),
    seed: Optional[int] = typer.Option(None, help="Traffic seed (default: the scenario's)."),
    token: Optional[str] = TokenOpt,
) -> None:
    """Drive a simulator scenario against a running service: runs, human reviews and late outcomes."""
    import asyncio

    from flywheel.cli.demo import DemoDriver

    if not token:
        typer.secho("a service token is needed: --token or $FLYWHEEL_TOKEN "
                    "(flywheel tokens create --role service)", fg="red", err=True)
        raise typer.Exit(2)
    settings = _settings(config)
    sim = settings.simulator
    if scenario:
        sim = sim.model_copy(update={"scenario": scenario})
    driver = DemoDriver(url, sim, seed=seed, token=token)
    asyncio.run(driver.run(runs or None, concurrency=concurrency, progress=True))


@runs_app.command("show")
def runs_show(
    run_id: str,
    url: str = typer.Option(DEFAULT_URL, help="Base URL of the service."),
    token: Optional[str] = TokenOpt,
) -> None:
    """Print a run with its steps, decision and outcomes (needs a service token)."""
    import httpx

    r = httpx.get(f"{url}/v1/runs/{run_id}", headers=_auth(token), timeout=10)
    if r.status_code != 200:
        typer.secho(f"{r.status_code}: {r.text}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(r.json(), indent=2))


@workflows_app.command("list")
def workflows_list(
    url: Optional[str] = typer.Option(None, help="Ask a running service instead of reading the config."),
    config: Optional[Path] = ConfigOpt,
    token: Optional[str] = TokenOpt,
) -> None:
    """List workflows: name, arms, gates."""
    if url:
        import httpx

        r = httpx.get(f"{url}/v1/workflows", headers=_auth(token), timeout=10)
        r.raise_for_status()
        for w in r.json():
            typer.echo(f"{w['name']:<20} arms={','.join(w['arms'])}  version={w['config_version']}")
        return
    from flywheel.services.runtime import load_workflows

    settings = _settings(config)
    try:
        specs = load_workflows(settings)
    except ValueError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None
    for spec in specs.values():
        gates = ", ".join(f"{k}>={v}" for k, v in spec.gates.items())
        typer.echo(f"{spec.name:<20} arms={','.join(spec.arms)}  gates: {gates}")


def _register_init() -> None:
    from flywheel.cli.init_configs import init

    app.command("init")(init)


_register_init()


def _register_benchmarks() -> None:
    from flywheel.cli.replay import replay
    from flywheel.cli.sim import sim

    bench_app.command("sim", help="Learning vs the best static config vs an oracle on a simulator scenario.")(sim)
    bench_app.command(
        "replay", help="The learning router on recorded outcomes (RouterBench format), bandit feedback."
    )(replay)


_register_benchmarks()


def _register_tokens() -> None:
    from flywheel.cli.tokens import tokens_app

    app.add_typer(tokens_app, name="tokens")


_register_tokens()


def _register_models() -> None:
    from flywheel.cli.models import models_app

    app.add_typer(models_app, name="models")


_register_models()


def _register_governance() -> None:
    from flywheel.cli.governance import register

    register(app)


_register_governance()


def _register_tune() -> None:
    from flywheel.cli.tune import tune

    app.command("tune")(tune)


_register_tune()


def _register_warm_start() -> None:
    from flywheel.cli.warm import export, learn

    from flywheel.cli.explain import runs_explain

    app.command("learn")(learn)
    app.command("export")(export)
    runs_app.command("explain")(runs_explain)


_register_warm_start()


def main() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    sys.exit(app())


if __name__ == "__main__":
    main()
