"""The ingress deployment: the FastAPI app, with routing local to each replica."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from ray import serve

from flywheel.registry.learned_config import LearnedConfig
from flywheel.services.agents import make_backend
from flywheel.services.http.api import create_api
from flywheel.services.agents.local import LocalAgents
from flywheel.services.deployments.agent import agent_deployment_name
from flywheel.services.deployments.governance_client import ServeGovernance
from flywheel.services.metrics import Metrics, RayBackend
from flywheel.services.runtime import Runtime
from flywheel.services.settings import AppSettings
from flywheel.workflows.agent_io import AgentError, AgentRequest, AgentResult

log = logging.getLogger("ray.serve")


class ServeAgents:
    """The AgentCaller over agent deployments' handles, and in-process backends for
    agents placed in the ingress."""

    def __init__(self, app_name: str, settings: AppSettings):
        self._handles = {
            a: serve.get_deployment_handle(agent_deployment_name(a), app_name=app_name)
            for a, s in settings.agents.items()
            if s.placement == "deployment"
        }
        self._inline = LocalAgents(
            {a: make_backend(s, settings.simulator) for a, s in settings.agents.items() if s.placement == "ingress"}
        )

    async def __call__(self, agent: str, request: AgentRequest) -> AgentResult:
        handle = self._handles.get(agent)
        if handle is None:
            return await self._inline(agent, request)
        if request.on_delta is not None:  # a callback does not cross processes: the answer comes whole
            request = dataclasses.replace(request, on_delta=None)
        result = await handle.run.remote(request)
        if isinstance(result, dict):
            raise AgentError(result.get("error", "agent failed"))
        return result


class ConfigWatcher:
    """Keeps a runtime's live configs equal to the router deployment's, by long-polling."""

    def __init__(self, runtime: Runtime, app_name: str, timeout_s: float = 10.0):
        self.runtime = runtime
        self.router = serve.get_deployment_handle("router", app_name=app_name)
        self.timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                changed = await self.router.watch.remote(self.runtime.configs.versions(), self.timeout_s)
                for config, state in changed:
                    self.runtime.configs.apply(LearnedConfig.model_validate(config), state)
            except asyncio.CancelledError:
                raise
            except Exception:  # the router restarting must not stop the replica serving
                log.exception("config watch failed; retrying")
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class ReplicaHeader:
    """ASGI middleware: each response names the ingress replica that served it
    (`x-flywheel-replica`), so clients and benchmarks can tell replicas apart."""

    def __init__(self, app: Any, replica: str):
        self.app = app
        self.header = (b"x-flywheel-replica", replica.encode())

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def tagged(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], self.header]
            await send(message)

        await self.app(scope, receive, tagged)


def ingress_api_builder(settings: dict[str, Any]):
    """The ASGI builder Serve evaluates on each ingress replica."""

    def build():
        app_settings = AppSettings.model_validate(settings)
        app_name = serve.get_replica_context().app_name

        async def factory() -> Runtime:
            agents = ServeAgents(app_name, app_settings)
            # Metrics go to Ray, which exports them with Serve's own.
            runtime = await asyncio.to_thread(Runtime.from_settings, app_settings, agents, Metrics(RayBackend()))
            watcher = ConfigWatcher(runtime, app_name)
            watcher.start()
            runtime.on_close(watcher.stop)
            if app_settings.learning.enabled:
                runtime.governance = ServeGovernance(serve.get_deployment_handle("router", app_name=app_name))
                learner = serve.get_deployment_handle("learner", app_name=app_name)
                # Fire and forget: the learner reads the ledger; this only wakes it sooner.
                runtime.on_outcomes(lambda positions: learner.notify.remote(positions))
            return runtime

        api = create_api(factory, app_settings.limits)
        api.add_middleware(ReplicaHeader, replica=serve.get_replica_context().replica_tag)
        return api

    return build


def ingress_deployment(settings: AppSettings):
    """The ingress deployment class for these settings (made at build time, not import)."""

    @serve.deployment(
        name="ingress",
        num_replicas=settings.serve.ingress_replicas,
        max_ongoing_requests=settings.serve.ingress_max_ongoing_requests,
        ray_actor_options={"num_cpus": settings.serve.num_cpus},
    )
    @serve.ingress(ingress_api_builder(settings.model_dump()))
    class Ingress:
        def __init__(self, router: Any, agents: dict[str, Any], learner: Any = None):
            # The handles are bound so Serve deploys the router and agents with this
            # app; the API resolves them by name on the replica.
            self.router = router
            self.agents = agents
            self.learner = learner

    return Ingress
