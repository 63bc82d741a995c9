"""The service's Prometheus metrics, behind one facade with two backends.

Business code (the runtime, the learner's driver) calls :class:`Metrics` with its own
records (a run, an outcome report, a ledger snapshot); the facade turns them into metric
updates and hands those to a backend: :class:`PrometheusBackend` (prometheus-client, its
own registry, served at ``/metrics`` by the local server) or :class:`RayBackend`
(``ray.util.metrics``, exported by Ray with Serve's own metrics). Every metric, with
its labels, is declared once in :data:`SPECS`; the README lists them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from flywheel.ledger.observe import LoopSnapshot, OutcomeFact
    from flywheel.ledger.records import OutcomeReport, RunRecord

Kind = Literal["counter", "gauge", "histogram"]
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS = (1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0)
REWARD_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # Ray wants > 0
FINISHED = ("completed", "rejected", "failed")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: its name (without a backend's suffixes), kind, help text and label names."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("flywheel_runs_started", "counter", "Runs started.", ("workflow", "arm", "config_version")),
    MetricSpec("flywheel_runs_finished", "counter", "Runs that ended (completed, rejected or failed).",
               ("workflow", "arm", "status", "config_version")),
    MetricSpec("flywheel_decision_seconds", "histogram", "Time the route step took to choose an arm.",
               ("workflow",), LATENCY_BUCKETS),
    MetricSpec("flywheel_agent_seconds", "histogram", "Agent call latency, as the agent reports it.",
               ("arm",), LATENCY_BUCKETS),
    MetricSpec("flywheel_agent_tokens", "counter", "Tokens the agents read (in) and wrote (out).",
               ("arm", "direction")),
    MetricSpec("flywheel_agent_cost_usd", "counter", "What the agent calls cost, in USD.", ("arm",)),
    MetricSpec("flywheel_outcomes", "counter", "Outcome events posted: accepted, duplicate or rejected.",
               ("result",)),
    MetricSpec("flywheel_outcomes_rejected", "counter", "Rejected outcome events, by kind of reason.",
               ("reason",)),
    MetricSpec("flywheel_outcome_lag_seconds", "histogram", "Time from a run's start to its outcome.",
               ("workflow",), LAG_BUCKETS),
    MetricSpec("flywheel_reward", "histogram", "Reward of each accepted outcome.", ("workflow", "arm"),
               REWARD_BUCKETS),
    MetricSpec("flywheel_human_share", "gauge", "Share of recent runs the gate sent to a human.", ("workflow",)),
    MetricSpec("flywheel_unattended_error_rate", "gauge",
               "Error rate of recent runs completed without a human (outcomes known).", ("workflow",)),
    MetricSpec("flywheel_unattended_error_target", "gauge", "The workflow's max_unattended_error_rate.",
               ("workflow",)),
    MetricSpec("flywheel_gate_threshold", "gauge", "The confidence threshold a gate used last.",
               ("workflow", "gate")),
    MetricSpec("flywheel_drift_events", "gauge", "Drift events the learners recorded.", ("workflow",)),
    MetricSpec("flywheel_version_changes", "gauge",
               "Versions by what governance did (propose, auto-promote, refuse, approve, reject, rollback...).",
               ("workflow", "action")),
    MetricSpec("flywheel_versions_pending_review", "gauge", "Versions waiting for ML ops' review.", ("workflow",)),
    MetricSpec("flywheel_seconds_since_last_version", "gauge", "Seconds since the last version change.",
               ("workflow",)),
    MetricSpec("flywheel_outbox_depth", "gauge", "Proposed versions not yet in the registry.", ()),
    MetricSpec("flywheel_mlflow_up", "gauge", "1 when the registry (MLflow) answered its last check.", ()),
)


class Backend(Protocol):
    """Where metric updates go; `name` is one of :data:`SPECS`, labels as declared there."""

    def inc(self, name: str, value: float, labels: dict[str, str]) -> None: ...

    def set(self, name: str, value: float, labels: dict[str, str]) -> None: ...

    def observe(self, name: str, value: float, labels: dict[str, str]) -> None: ...


class PrometheusBackend:
    """prometheus-client metrics in a registry of their own (never the global one)."""

    def __init__(self) -> None:
        import prometheus_client as pc

        self.registry = pc.CollectorRegistry(auto_describe=True)
        kinds = {"counter": pc.Counter, "gauge": pc.Gauge, "histogram": pc.Histogram}
        self._metrics = {}
        for spec in SPECS:
            extra = {"buckets": spec.buckets} if spec.kind == "histogram" else {}
            self._metrics[spec.name] = kinds[spec.kind](
                spec.name, spec.help, list(spec.labels), registry=self.registry, **extra)

    def _child(self, name: str, labels: dict[str, str]):
        metric = self._metrics[name]
        return metric.labels(**labels) if labels else metric

    def inc(self, name: str, value: float, labels: dict[str, str]) -> None:
        self._child(name, labels).inc(value)

    def set(self, name: str, value: float, labels: dict[str, str]) -> None:
        self._child(name, labels).set(value)

    def observe(self, name: str, value: float, labels: dict[str, str]) -> None:
        self._child(name, labels).observe(value)

    def exposition(self) -> tuple[bytes, str]:
        """(body, content type) of the text format, for a scrape."""
        import prometheus_client as pc

        return pc.generate_latest(self.registry), pc.CONTENT_TYPE_LATEST


class RayBackend:
    """ray.util.metrics in a Ray worker (a Serve replica): Ray exports them with its own,
    counters with a `_total` suffix as prometheus-client does."""

    def __init__(self) -> None:
        from ray.util import metrics as rm

        self._metrics = {}
        for spec in SPECS:
            if spec.kind == "counter":
                made = rm.Counter(spec.name + "_total", spec.help, tag_keys=spec.labels)
            elif spec.kind == "gauge":
                made = rm.Gauge(spec.name, spec.help, tag_keys=spec.labels)
            else:
                made = rm.Histogram(spec.name, spec.help, boundaries=list(spec.buckets), tag_keys=spec.labels)
            self._metrics[spec.name] = made

    def inc(self, name: str, value: float, labels: dict[str, str]) -> None:
        if value > 0:  # Ray's Counter refuses 0, which changes nothing anyway
            self._metrics[name].inc(value, tags=labels or None)

    def set(self, name: str, value: float, labels: dict[str, str]) -> None:
        self._metrics[name].set(value, tags=labels or None)

    def observe(self, name: str, value: float, labels: dict[str, str]) -> None:
        self._metrics[name].observe(value, tags=labels or None)


def reason_kind(reason: str) -> str:
    """A rejection reason without its particulars (ids, values): a label of few values."""
    head = re.split(r"['\"\d:(=]", reason, maxsplit=1)[0].strip().lower()
    return re.sub(r"[^a-z_]+", "_", head).strip("_")[:40] or "other"


class Metrics:
    """What the service measures, in its own terms; the backend decides who counts."""

    def __init__(self, backend: Backend):
        self.backend = backend

    def run(self, run: "RunRecord", *, started: bool) -> None:
        """A run written by a start (`started`) or a resume: what it did, step by step."""
        arm = run.decision.arm if run.decision is not None else ""
        wf, version = run.workflow, run.config_version
        if started:
            self.backend.inc("flywheel_runs_started", 1, {"workflow": wf, "arm": arm, "config_version": version})
        for step in run.steps:
            out = step.output
            if step.kind == "route" and step.ended_at is not None:
                self.backend.observe("flywheel_decision_seconds", step.ended_at - step.started_at, {"workflow": wf})
            elif step.kind == "agent" and "latency_s" in out:
                agent = str(out.get("agent", arm))
                self.backend.observe("flywheel_agent_seconds", float(out["latency_s"]), {"arm": agent})
                self.backend.inc("flywheel_agent_tokens", float(out.get("tokens_in", 0)), {"arm": agent, "direction": "in"})
                self.backend.inc("flywheel_agent_tokens", float(out.get("tokens_out", 0)), {"arm": agent, "direction": "out"})
                self.backend.inc("flywheel_agent_cost_usd", float(out.get("cost", 0.0)), {"arm": agent})
            elif step.kind == "gate" and "threshold" in out:
                self.backend.set("flywheel_gate_threshold", float(out["threshold"]), {"workflow": wf, "gate": step.step_id})
        if run.status in FINISHED:
            self.backend.inc("flywheel_runs_finished", 1,
                             {"workflow": wf, "arm": arm, "status": run.status, "config_version": version})

    def outcomes(self, report: "OutcomeReport", facts: list["OutcomeFact"]) -> None:
        """A posted batch: accepted, duplicate, rejected (by reason); lag and reward of the new ones."""
        self.backend.inc("flywheel_outcomes", report.new, {"result": "accepted"})
        self.backend.inc("flywheel_outcomes", report.duplicate, {"result": "duplicate"})
        self.backend.inc("flywheel_outcomes", len(report.rejected), {"result": "rejected"})
        for r in report.rejected:
            self.backend.inc("flywheel_outcomes_rejected", 1, {"reason": reason_kind(r.reason)})
        for f in facts:
            self.backend.observe("flywheel_outcome_lag_seconds", max(0.0, f.lag_s), {"workflow": f.workflow})
            self.backend.observe("flywheel_reward", f.reward, {"workflow": f.workflow, "arm": f.arm or ""})

    def loop(self, snapshot: "LoopSnapshot", targets: dict[str, float]) -> None:
        """The learning loop's state as the ledger shows it; `targets`: each workflow's
        max_unattended_error_rate."""
        for wf, target in targets.items():
            self.backend.set("flywheel_unattended_error_target", target, {"workflow": wf})
        for wf, w in snapshot.workflows.items():
            labels = {"workflow": wf}
            if w.human_share is not None:
                self.backend.set("flywheel_human_share", w.human_share, labels)
            if w.unattended_error_rate is not None:
                self.backend.set("flywheel_unattended_error_rate", w.unattended_error_rate, labels)
            self.backend.set("flywheel_drift_events", w.drift_events, labels)
            for action, n in w.version_changes.items():
                self.backend.set("flywheel_version_changes", n, {"workflow": wf, "action": action})
            if w.last_change_at is not None:
                self.backend.set("flywheel_seconds_since_last_version", snapshot.at - w.last_change_at, labels)
        self.backend.set("flywheel_outbox_depth", snapshot.outbox_depth, {})

    def registry(self, *, reachable: bool, pending: dict[str, int]) -> None:
        """Whether MLflow answered, and the versions waiting for review per workflow."""
        self.backend.set("flywheel_mlflow_up", 1.0 if reachable else 0.0, {})
        for wf, n in pending.items():
            self.backend.set("flywheel_versions_pending_review", n, {"workflow": wf})
