"""`flywheel up --local`: the same API on plain uvicorn, agents in-process, no Ray."""

from __future__ import annotations

import threading
import time

import uvicorn

from flywheel.services.api import create_api
from flywheel.services.launcher import _drive_demo, print_urls
from flywheel.services.local_agents import LocalAgents
from flywheel.services.runtime import Runtime
from flywheel.services.settings import AppSettings


def local_api(settings: AppSettings):
    """The FastAPI app with an in-process runtime."""
    settings = settings.absolute()

    async def factory() -> Runtime:
        return Runtime.from_settings(settings, LocalAgents.from_settings(settings))

    return create_api(factory)


def serve_locally(settings: AppSettings, *, demo: bool, runs: int, concurrency: int) -> None:
    url = f"http://{settings.serve.host}:{settings.serve.port}"
    server = uvicorn.Server(
        uvicorn.Config(local_api(settings), host=settings.serve.host, port=settings.serve.port, log_level="warning")
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
