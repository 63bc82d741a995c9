"""`flywheel up`: a local Ray, the Serve app, the demo; Ctrl-C takes it all down."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import typer

from flywheel.services.settings import AppSettings


def print_urls(url: str) -> None:
    typer.secho(f"Flywheel API:   {url}/v1", fg="green")
    typer.secho(f"OpenAPI docs:   {url}/docs   (schema: {url}/openapi.json)", fg="green")


def _drive_demo(url: str, settings: AppSettings, runs: int, concurrency: int) -> None:
    from flywheel.services.demo import DemoDriver

    typer.echo(f"Driving scenario {settings.simulator.scenario!r} against {url} (Ctrl-C stops)")
    driver = DemoDriver(url, settings.simulator)
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

    if settings.serve.throughput_optimized:  # read by Serve's processes, which inherit it
        os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
    typer.echo("Starting a local Ray" + (" with its dashboard" if dashboard else "") + " ...")
    ray.init(include_dashboard=dashboard, logging_level="WARNING", log_to_driver=False)
    try:
        run_app(settings)
        print_urls(url)
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
