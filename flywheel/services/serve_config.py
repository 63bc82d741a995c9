"""The app as a Serve config: deployed declaratively, so that Serve updates it in place.

Serve gives an app deployed by `serve.run` a new random code version on every
redeploy, so every replica restarts (ray/serve/_private/client.py, Ray 2.60). An
app deployed from a config (what `serve deploy` submits) keeps its code version
while the import path, args and the set of deployments with autoscaling configs
stay the same, and a changed `autoscaling_config` is then applied to the running
replicas (ApplicationState.apply_app_config, override_deployment_info). So the
flywheel app is submitted as a config whose `deployments` list every agent
deployment's autoscaling from the start, and flywheel.services.resources changes
only those entries.

The controller's `deploy_apps` replaces the whole set of config-deployed apps;
`submit` keeps the others as they were.
"""

from __future__ import annotations

import time
from typing import Any

from flywheel.services.settings import AgentSettings, AppSettings

APP_NAME = "flywheel"
IMPORT_PATH = "flywheel.services.app:build_app"
SERVE_TARGET_ONGOING = 2.0  # Serve's default target_ongoing_requests


def agent_deployment_name(agent: str) -> str:
    return f"agent-{agent}"


def default_autoscaling(agent: AgentSettings) -> dict[str, float]:
    """An agent deployment's autoscaling before any plan: `replicas` replicas, no more, no fewer."""
    return {"min_replicas": agent.replicas, "max_replicas": agent.replicas,
            "target_ongoing_requests": SERVE_TARGET_ONGOING}


def app_config(settings: AppSettings) -> dict[str, Any]:
    """The flywheel app's Serve application config: the builder, the settings as its args, and
    each agent deployment's autoscaling (settings are made absolute: the build runs elsewhere)."""
    settings = settings.absolute()
    return {
        "name": APP_NAME,
        "route_prefix": "/",
        "import_path": IMPORT_PATH,
        "args": {"settings": settings.model_dump(mode="json")},
        "deployments": [
            {"name": agent_deployment_name(name), "autoscaling_config": default_autoscaling(a)}
            for name, a in sorted(settings.agents.items()) if a.placement == "deployment"
        ],
    }


def _client() -> Any:
    from ray.serve.context import _get_global_client

    return _get_global_client()


def details() -> dict[str, Any]:
    """Serve's instance details (what `serve status` and the dashboard's REST API show)."""
    return _client().get_serve_details()


def submit(app: dict[str, Any]) -> None:
    """Deploy `app` (a Serve application config) declaratively, the other config-deployed apps kept."""
    from ray.serve.schema import ServeDeploySchema

    apps = [a["deployed_app_config"] for name, a in details().get("applications", {}).items()
            if name != app["name"] and a.get("deployed_app_config")]
    _client().deploy_apps(ServeDeploySchema.model_validate({"applications": [*apps, app]}))


def wait_running(name: str = APP_NAME, timeout_s: float = 300.0) -> None:
    """Wait until the app is RUNNING; raise RuntimeError with Serve's message if its deploy fails."""
    from ray import serve

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = serve.status().applications.get(name)
        if status is not None and status.status == "RUNNING":
            return
        if status is not None and status.status == "DEPLOY_FAILED":
            raise RuntimeError(f"Serve app {name!r} failed to deploy: {status.message}")
        time.sleep(0.5)
    raise RuntimeError(f"Serve app {name!r} not running after {timeout_s:.0f} s")
