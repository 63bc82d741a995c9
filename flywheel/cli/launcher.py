"""`flywheel up`: a local Ray, the Serve app, the demo; Ctrl-C takes it all down.

Before serving, the ledger is migrated and an admin token is made sure of: the
one in $FLYWHEEL_ADMIN_TOKEN, else a new one printed once when none exists.
The demo drives the service with a service token of its own (`demo-<unix time>`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from flywheel.services.settings import AppSettings

if TYPE_CHECKING:
    from flywheel.ledger import Ledger


def print_urls(url: str) -> None:
    typer.secho(f"Flywheel API:   {url}/v1", fg="green")
    typer.secho(f"OpenAPI docs:   {url}/docs   (schema: {url}/openapi.json)", fg="green")


def prepare_ledger(settings: AppSettings) -> str | None:
    """Migrate the settings' ledger and ensure an admin token; a new admin secret, or None."""
    from flywheel.services.http.auth import ensure_admin_token

    with _ledger(settings) as ledger:
        ledger.upgrade()
        try:
            return ensure_admin_token(ledger, os.environ.get("FLYWHEEL_ADMIN_TOKEN"))
        except ValueError as e:
            typer.secho(str(e), fg="red", err=True)
            raise typer.Exit(2) from None


def announce_admin_token(secret: str | None) -> None:
    if secret:
        typer.secho(f"Admin token (shown once, store it): {secret}", fg="yellow", bold=True)


def demo_token(settings: AppSettings) -> str:
    """A fresh service token for the demo's traffic."""
    with _ledger(settings) as ledger:
        _, secret = ledger.create_token(
            "service", name=f"demo-{int(time.time())}", created_by="flywheel up", reason="demo traffic"
        )
    return secret


@contextmanager
def _ledger(settings: AppSettings) -> Iterator["Ledger"]:
    ledger = settings.open_ledger(settings.absolute().database_url)
    try:
        yield ledger
    finally:
        ledger.dispose()


def _drive_demo(url: str, settings: AppSettings, runs: int, concurrency: int) -> None:
    from flywheel.cli.demo import DemoDriver

    typer.echo(f"Driving scenario {settings.simulator.scenario!r} against {url} (Ctrl-C stops)")
    driver = DemoDriver(url, settings.simulator, token=demo_token(settings))
    try:
        asyncio.run(driver.run(runs or None, concurrency=concurrency, progress=True))
    except asyncio.CancelledError:  # Ctrl-C while the demo ran: stop everything
        raise KeyboardInterrupt from None


def serve_on_ray(
    settings: AppSettings, *, url: str, demo: bool, runs: int, concurrency: int, dashboard: bool
) -> None:
    import ray
    from ray import serve

    from flywheel.services.app import run_app

    admin_secret = prepare_ledger(settings)
    if settings.serve.throughput_optimized:  # read by Serve's processes, which inherit it
        os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
    typer.echo("Starting a local Ray" + (" with its dashboard" if dashboard else "") + " ...")
    from flywheel.services.llm_serving import ray_cpus

    ray.init(num_cpus=ray_cpus(settings), include_dashboard=dashboard, logging_level="WARNING", log_to_driver=False)
    try:
        run_app(settings)
        print_urls(url)
        announce_admin_token(admin_secret)
        if demo:
            _drive_demo(url, settings, runs, concurrency)
        typer.echo("Serving. Ctrl-C to stop.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        typer.echo("\nStopping ...")
    finally:
        _shutdown(serve, ray)


def _shutdown(serve, ray) -> None:
    """Serve, then the local Ray; a second Ctrl-C is ignored meanwhile, so nothing is left half-stopped."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    finally:
        signal.signal(signal.SIGINT, previous)
    typer.echo("Stopped: Serve and the local Ray are down.")
