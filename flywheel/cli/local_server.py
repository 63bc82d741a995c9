"""`flywheel up --local`: the same API on plain uvicorn, agents in-process, no Ray."""

from __future__ import annotations

import asyncio
import threading
import time

import uvicorn

from flywheel.services.http.api import create_api
from flywheel.cli.launcher import _drive_demo, announce_admin_token, prepare_ledger, print_urls
from flywheel.services.agents.local import LocalAgents
from flywheel.services.runtime import Runtime
from flywheel.services.settings import AppSettings


def local_api(settings: AppSettings, *, learning: bool = False):
    """The FastAPI app with an in-process runtime (and, with `learning`, the learning loop
    in a background task of the same process, publishing straight into the runtime)."""
    settings = settings.absolute()

    async def factory() -> Runtime:
        runtime = Runtime.from_settings(settings, LocalAgents.from_settings(settings))
        if learning and settings.learning.enabled:
            follow = await _govern_locally(settings, runtime)
            task = asyncio.get_running_loop().create_task(_learn(settings, runtime, follow))

            async def stop() -> None:
                task.cancel()

            runtime.on_close(stop)
        return runtime

    return create_api(factory, settings.limits)


async def _govern_locally(settings: AppSettings, runtime: Runtime):
    """Review and operator operations in-process; returns `follow(workflow=None)`, which makes
    the registry's champion live in the runtime (as router replicas do on Serve)."""
    from flywheel.services.governance import ChampionSync, GovernanceOps, LocalGovernance

    ops = await asyncio.to_thread(GovernanceOps.from_settings, settings, runtime.ledger, list(runtime.specs))
    sync = ChampionSync(ops.governor.registry)

    async def follow(workflow: str | None = None) -> None:
        for wf in [workflow] if workflow else list(runtime.specs):
            found = await asyncio.to_thread(sync.fetch, wf, runtime.configs.learned(wf).version)
            if found is not None:
                runtime.configs.apply(*found)

    runtime.governance = LocalGovernance(ops, follow)
    await follow()
    return follow


async def _learn(settings: AppSettings, runtime: Runtime, follow) -> None:
    from flywheel.registry.mlflow_registry import RegistryUnavailable
    from flywheel.services.wiring import learning_loop

    from flywheel.services.loop_metrics import LoopGauges

    loop = await asyncio.to_thread(learning_loop, settings)
    gauges = LoopGauges(runtime.metrics, loop)
    last_sync = time.monotonic()
    while True:
        learned = await asyncio.to_thread(loop.step)
        await asyncio.to_thread(loop.publish_due)
        try:
            for outcome in await asyncio.to_thread(loop.publish_pending):
                if outcome.champion_changed:
                    await follow(outcome.workflow)
        except RegistryUnavailable:
            pass  # the versions wait in the ledger; serving stays on the last champion
        await asyncio.to_thread(gauges.refresh)  # after publishing: never delays a version
        if time.monotonic() - last_sync >= settings.governance.sync_s:  # changes made elsewhere (CLI)
            await follow()
            last_sync = time.monotonic()
        if not learned:
            await asyncio.sleep(settings.learning.poll_s)


def serve_locally(settings: AppSettings, *, demo: bool, runs: int, concurrency: int) -> None:
    url = f"http://{settings.serve.host}:{settings.serve.port}"
    admin_secret = prepare_ledger(settings)
    server = uvicorn.Server(
        uvicorn.Config(local_api(settings, learning=True), host=settings.serve.host, port=settings.serve.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    print_urls(url)
    announce_admin_token(admin_secret)
    try:
        if demo:
            _drive_demo(url, settings, runs, concurrency)
        while thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(timeout=10)
