"""Builders from config to a Serve application; a Serve config file can point here."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application

from flywheel.registry.mlflow_registry import ensure_store
from flywheel.services.deployments.agent import AgentDeployment
from flywheel.services.deployments.ingress import ingress_deployment
from flywheel.services.deployments.learner import LearnerDeployment
from flywheel.services.deployments.router import RouterDeployment
from flywheel.services.runtime import load_workflows
from flywheel.services.serve_config import (
    APP_NAME, agent_deployment_name, app_config, default_autoscaling, submit, wait_running,
)
from flywheel.services.settings import LLM_ROUTE, AppSettings, default_settings_file, settings_from
from flywheel.workflows.loading import validate_data

__all__ = ["APP_NAME", "build_app", "build_flywheel_app", "deploy_models", "run_app"]


def build_flywheel_app(settings: AppSettings) -> Application:
    """The application: a FastAPI ingress, the router, one deployment per agent
    (agents placed in the ingress run inside its replicas instead), the learner."""
    settings = settings.absolute()
    load_workflows(settings)  # fail here, at build, naming the file and field
    dumped = settings.model_dump()
    router = RouterDeployment.options(
        num_replicas=settings.serve.router_replicas, ray_actor_options={"num_cpus": settings.serve.num_cpus}
    ).bind(dumped)
    agents = {
        name: AgentDeployment.options(
            name=agent_deployment_name(name),
            autoscaling_config=default_autoscaling(a),  # a plan's changes are applied in place
            max_ongoing_requests=a.max_ongoing_requests,
            ray_actor_options={"num_cpus": a.num_cpus},
        ).bind(name, a.model_dump(), settings.simulator.model_dump())
        for name, a in settings.agents.items()
        if a.placement == "deployment"
    }
    learner = None
    if settings.learning.enabled:
        ensure_store(settings.learning.mlflow_tracking_uri)  # once, before the router and learner open it
        learner = LearnerDeployment.options(ray_actor_options={"num_cpus": settings.serve.num_cpus}).bind(dumped)
    return ingress_deployment(settings).bind(router, agents, learner)


def deploy_models(settings: AppSettings) -> list[str]:
    """Deploy the Serve LLM app of the vllm agents' models (none: nothing); returns their names."""
    from flywheel.services.llm_serving import LLM_APP_NAME, served_models

    models = served_models(settings)
    if not models:
        return []
    from flywheel.services.llm_serving import build_llm_app
    from flywheel.services.model_weights import prepare

    for m in models:
        prepare(m)
    serve.run(build_llm_app(models), name=LLM_APP_NAME, route_prefix=LLM_ROUTE)
    return [m.name for m in models]


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Serve's application builder: `args` may name a settings file (`config`) and override fields.

    serve run flywheel.services.app:build_app config=configs/app.yaml

    Without `config`, the packaged defaults (flywheel/configs/app.yaml). `settings` (all of
    them, as `run_app` submits them) replaces the file.
    """
    args = dict(args or {})
    if "settings" in args:
        return build_flywheel_app(AppSettings.model_validate(args["settings"]))
    path = Path(args.pop("config")) if "config" in args else default_settings_file()
    settings = settings_from(path)
    if args:
        merged = settings.model_dump() | args
        settings = validate_data(merged, AppSettings, path)
    return build_flywheel_app(settings)


def run_app(settings: AppSettings, *, blocking: bool = False) -> None:
    """Deploy the app on the connected Ray, with HTTP on the settings' host and port.

    The app is submitted as a Serve config (flywheel.services.serve_config: what
    `serve deploy` does), so that resource plans apply in place; this waits until
    it runs and raises with Serve's message if it fails. When agents use the vllm
    backend, their models (prepared first, once) are deployed before it, as the
    Serve LLM app at /llm on the same proxy.
    """
    serve.start(http_options={"host": settings.serve.host, "port": settings.serve.port})
    deploy_models(settings)
    load_workflows(settings)  # fail here, naming the file and field, before Serve builds it
    submit(app_config(settings))
    wait_running(APP_NAME)
    while blocking:
        time.sleep(3600)
