"""The live configs' `resources` applied to the running app's agent deployments, in place.

Every workflow's champion may carry `<agent>.min_replicas`, `.max_replicas` and
`.target_ongoing_requests`. An agent deployment serves every workflow, so the
settings it gets are the ones all their plans accept (the most of the minimums
and maximums, the least of the targets); an agent no champion plans keeps the
settings' own (`replicas`). `apply_resources` compares them with the autoscaling
Serve runs and, where they differ, submits the app's config with those
deployments' `autoscaling_config` changed (flywheel.services.serve_config): Serve
applies that to the running replicas, without restarting them.

The router replicas follow the champions, so they apply (ResourceApplier): one
more router replica applies the same settings, and Serve sees no change.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from flywheel.registry.learned_config import LearnedConfig
from flywheel.services.serve_config import APP_NAME, agent_deployment_name, default_autoscaling, details, submit
from flywheel.services.settings import AppSettings

log = logging.getLogger("ray.serve")
KEYS = ("min_replicas", "max_replicas", "target_ongoing_requests")


class NotDeclarative(RuntimeError):
    """The app was deployed by `serve.run`, not from a config: Serve would restart every replica."""


def desired_autoscaling(settings: AppSettings, configs: Iterable[LearnedConfig]) -> dict[str, dict[str, float]]:
    """Each agent deployment's autoscaling under the live configs, by deployment name.

    >>> from flywheel.services.settings import AgentSettings
    >>> from flywheel.registry.learned_config import RoutingConfig
    >>> s = AppSettings(agents={"fast": AgentSettings(backend="sim", model="fast")})
    >>> cfg = lambda r: LearnedConfig(workflow="w", thresholds={}, routing=RoutingConfig(), cost_weight=1.0, resources=r)
    >>> desired_autoscaling(s, [cfg({"fast.min_replicas": 2, "fast.max_replicas": 3}),
    ...                         cfg({"fast.max_replicas": 5, "fast.target_ongoing_requests": 1.5})])
    {'agent-fast': {'min_replicas': 2, 'max_replicas': 5, 'target_ongoing_requests': 1.5}}
    """
    planned: dict[str, dict[str, list[float]]] = {}
    for config in configs:
        for key, value in config.resources.items():
            agent, _, setting = key.rpartition(".")
            if setting in KEYS:
                planned.setdefault(agent, {}).setdefault(setting, []).append(float(value))
    out = {}
    for name, agent in sorted(settings.agents.items()):
        if agent.placement != "deployment":
            continue
        scaling: dict[str, Any] = dict(default_autoscaling(agent))
        for setting, values in planned.get(name, {}).items():
            scaling[setting] = min(values) if setting == "target_ongoing_requests" else int(max(values))
        scaling["max_replicas"] = max(scaling["max_replicas"], scaling["min_replicas"])
        out[agent_deployment_name(name)] = scaling
    return out


def _differs(running: dict[str, Any] | None, wanted: dict[str, float]) -> bool:
    return running is None or any(abs(float(running.get(k) or 0) - float(v)) > 1e-9 for k, v in wanted.items())


def apply_resources(wanted: dict[str, dict[str, float]], app_name: str = APP_NAME) -> list[str] | None:
    """Submit the autoscaling of the agent deployments that differ from what Serve runs; returns their
    names ([] when none differs), or None when the app is not running now (try again later)."""
    app = details().get("applications", {}).get(app_name)
    if app is None or app.get("status") != "RUNNING":
        return None
    running = {name: (d.get("deployment_config") or {}).get("autoscaling_config")
               for name, d in app.get("deployments", {}).items()}
    changed = sorted(name for name, scaling in wanted.items() if name in running and _differs(running[name], scaling))
    if not changed:
        return []
    config = app.get("deployed_app_config")
    if not config:
        raise NotDeclarative(f"Serve app {app_name!r} was not deployed from a config; start it with run_app "
                             "or `serve deploy` to apply resources in place")
    entries = {d["name"]: dict(d) for d in config.get("deployments", [])}
    for name in changed:
        entry = entries.setdefault(name, {"name": name})
        entry["autoscaling_config"] = {**(entry.get("autoscaling_config") or {}), **wanted[name]}
    submit({**config, "deployments": list(entries.values())})
    log.info("resources applied to %s: %s", app_name, {n: wanted[n] for n in changed})
    return changed


class ResourceApplier:
    """Applies the live configs' resources when they change (and retries while the app deploys)."""

    def __init__(self, settings: AppSettings, app_name: str = APP_NAME):
        self.settings = settings
        self.app_name = app_name
        self._applied: dict[str, dict[str, float]] | None = None

    def follow(self, configs: Iterable[LearnedConfig]) -> list[str] | None:
        """Apply what `configs` (the live ones) ask for, unless this applier already did."""
        wanted = desired_autoscaling(self.settings, configs)
        if wanted == self._applied:
            return []
        changed = apply_resources(wanted, self.app_name)
        if changed is not None:
            self._applied = wanted
        return changed
