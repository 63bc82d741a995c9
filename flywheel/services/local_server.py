"""`flywheel up --local`: the same API on plain uvicorn, agents in-process, no Ray."""

from __future__ import annotations

import asyncio
import threading
import time

import uvicorn

from flywheel.services.api import create_api
from flywheel.services.launcher import _drive_demo, print_urls
from flywheel.services.local_agents import LocalAgents
from flywheel.services.runtime import Runtime
from flywheel.services.settings import AppSettings


def local_api(settings: AppSettings, *, learning: bool = False):
    """The FastAPI app with an in-process runtime (and, with `learning`, the learning loop
    in a background task of the same process, publishing straight into the runtime)."""
    settings = settings.absolute()

    async def factory() -> Runtime:
        runtime = Runtime.from_settings(settings, LocalAgents.from_settings(settings))
        if learning and settings.learning.enabled:
            task = asyncio.get_running_loop().create_task(_learn(settings, runtime))

            async def stop() -> None:
                task.cancel()

            runtime.on_close(stop)
        return runtime

    return create_api(factory)


async def _learn(settings: AppSettings, runtime: Runtime) -> None:
    from flywheel.services.learning import LearningLoop

    loop = await asyncio.to_thread(LearningLoop.from_settings, settings)
    while True:
        learned = await asyncio.to_thread(loop.step)
        for p in await asyncio.to_thread(loop.publish_due):
            runtime.configs.apply(p.config, p.policy_state)
        if not learned:
            await asyncio.sleep(settings.learning.poll_s)


def serve_locally(settings: AppSettings, *, demo: bool, runs: int, concurrency: int) -> None:
    url = f"http://{settings.serve.host}:{settings.serve.port}"
    server = uvicorn.Server(
        uvicorn.Config(local_api(settings, learning=True), host=settings.serve.host, port=settings.serve.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    print_urls(url)
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
