"""`flywheel tune WF --resources`: a resource plan of a workflow's agents, into a judged proposal.

The load comes from the ledger (flywheel.ledger.load: the agent steps of the runs
of the last `tuning.resources_window_s`, every workflow's, since an agent deployment
serves them all); the p95 target from the workflow's `targets.p95_latency_s` (the
strictest of the workflows that call the agent, where several set one). A replica's
capacity is its `max_ongoing_requests` (a vllm agent on a GPU model: the engine's
`max_num_seqs`), its cost its CPUs plus `tuning.gpu_cost_cpus` per accelerator. The
Tune job (flywheel.learners.resource_tune) chooses the settings, the discrete-event
simulation (flywheel.eval.resource_check) checks them, and the champion with the
plan as its `resources` goes into the outbox (`proposed_by: tune-resources`) with
that evidence; the governor judges it (the packaged policy: `resources.*` waits
for review).
"""

from __future__ import annotations

import math
import time
from typing import Any

from flywheel.eval.resource_check import SimulatedAgent, simulate_plan
from flywheel.learners.capacity import AgentLoad
from flywheel.learners.resource_tune import AgentDemand, ResourcePlan, resources_of, search_resources
from flywheel.ledger import Ledger
from flywheel.ledger.load import AgentLoadStats, agent_loads
from flywheel.services.runtime import load_workflows
from flywheel.services.settings import AgentSettings, AppSettings
from flywheel.services.wiring import governor_of
from flywheel.workflows.spec import WorkflowSpec

PROPOSER = "tune-resources"


def _replica(agent: AgentSettings, gpu_cost_cpus: float) -> tuple[int, float, int]:
    """(requests a replica serves at once, its cost in CPUs, its accelerators) of an agent."""
    if agent.backend == "vllm":
        from flywheel.services.models import load_models

        model = load_models(agent.models_file).get(agent.model)
        gpus = 0 if model.accelerator.type == "cpu" else model.accelerator.count
        return model.engine.max_num_seqs, model.accelerator.cpus + gpus * gpu_cost_cpus, gpus
    return agent.max_ongoing_requests, max(agent.num_cpus, 0.01), 0


def demands_of(settings: AppSettings, specs: dict[str, WorkflowSpec], workflow: str,
               loads: list[AgentLoadStats]) -> list[AgentDemand]:
    """The agent deployments `workflow` calls that carried load, each with every workflow's load on it."""
    spec = specs[workflow]
    if spec.targets.p95_latency_s is None:
        raise ValueError(f"targets.p95_latency_s: workflow {workflow!r} sets no p95 latency target to plan for")
    ours = {s.agent for s in loads if s.workflow == workflow}
    out = []
    for name in sorted(ours & set(spec.arms)):
        agent = settings.agents.get(name)
        if agent is None or agent.placement != "deployment":
            continue  # an agent in the ingress has no deployment to scale
        on = [s for s in loads if s.agent == name]
        n = sum(s.requests for s in on)
        mean_s = sum(s.mean_service_s * s.requests for s in on) / n
        second = sum((s.std_service_s**2 + s.mean_service_s**2) * s.requests for s in on) / n
        targets = [specs[s.workflow].targets.p95_latency_s for s in on if s.workflow in specs]
        slots, cost, gpus = _replica(agent, settings.tuning.gpu_cost_cpus)
        out.append(AgentDemand(
            agent=name,
            load=AgentLoad(mean_rate=sum(s.mean_rate for s in on), peak_rate=sum(s.peak_rate for s in on),
                           mean_service_s=max(mean_s, 1e-6), slots=slots),
            target_s=min(t for t in targets if t is not None),
            replica_cost=cost,
            accelerators_per_replica=gpus,
            service_cv=math.sqrt(max(0.0, second - mean_s**2)) / mean_s if mean_s > 0 else None,
        ))
    return out


def evidence_of(demands: list[AgentDemand], result: ResourcePlan, simulated: list[SimulatedAgent],
                window_s: float) -> dict[str, float]:
    """The proposal's evidence: the load, the model's and the simulation's p95, the search."""
    out: dict[str, float] = {
        "window_s": window_s, "trials": float(result.trials), "tune_seconds": result.seconds,
        "cost": sum(a.cost for a in result.assessments.values()), "closed_form_cost": result.start_cost,
        "meets_p95_in_simulation": float(all(s.meets for s in simulated)),
    }
    for d, s in zip(demands, simulated):
        a = result.assessments[d.agent]
        out.update({
            f"{d.agent}.arrival_rate_mean": d.load.mean_rate, f"{d.agent}.arrival_rate_peak": d.load.peak_rate,
            f"{d.agent}.service_mean_s": d.load.mean_service_s, f"{d.agent}.p95_target_s": d.target_s,
            f"{d.agent}.model_p95_peak_s": a.peak_p95_s, f"{d.agent}.sim_p95_mean_s": s.mean_p95_s,
            f"{d.agent}.sim_p95_peak_s": s.peak_p95_s, f"{d.agent}.replicas_mean": float(a.mean_replicas),
            f"{d.agent}.replicas_peak": float(a.peak_replicas),
        })
    return out


def plan_workflow_resources(settings: AppSettings, workflow: str, *, trials: int | None = None,
                            progress: bool = True, publish: bool = True,
                            now: float | None = None) -> dict[str, Any]:
    """Plan `workflow`'s agent deployments on the logged load, propose the plan, let the governor judge it."""
    specs = load_workflows(settings)
    if workflow not in specs:
        raise ValueError(f"workflow {workflow!r}: not one of {sorted(specs)}")
    tuning = settings.tuning
    ledger = Ledger(settings.resolved_database_url())
    try:
        ledger.upgrade()
        until = time.time() if now is None else now
        loads = agent_loads(ledger.engine, since=until - tuning.resources_window_s, until=until)
        demands = demands_of(settings, specs, workflow, loads)
        if not demands:
            raise ValueError(f"{workflow}: no agent calls logged in the last {tuning.resources_window_s:.0f} s")
        governor = governor_of(settings, ledger)
        champion = governor.registry.champion(workflow)
        if champion is None:
            raise ValueError(f"{workflow}: no live version to add a resource plan to yet")
        result = search_resources(demands, trials=trials or tuning.resources_trials, seed=settings.seed,
                                  cpus_per_trial=tuning.cpus_per_trial, progress=progress,
                                  ray_address=tuning.ray_address, local_cpus=tuning.local_cpus)
        simulated = simulate_plan(demands, result, seed=settings.seed)
        resources = resources_of(demands, result)
        config = champion.config.model_copy(update={"version": "",
                                                    "resources": {**champion.config.resources, **resources}})
        outbox_id = ledger.enqueue_version(
            workflow=workflow, proposed_by=PROPOSER, position=champion.position, config=config.model_dump(),
            evidence=evidence_of(demands, result, simulated, tuning.resources_window_s),
            learner_state=None, policy_state=champion.policy_state,
        )
        judged = governor.publish_outbox() if publish else []
    finally:
        ledger.dispose()
    return {
        "workflow": workflow,
        "outbox_id": outbox_id,
        "resources": resources,
        "agents": [
            {"agent": s.agent, "min_replicas": result.scalings[s.agent].min_replicas,
             "max_replicas": result.scalings[s.agent].max_replicas,
             "target_ongoing_requests": round(result.scalings[s.agent].target_ongoing_requests, 3),
             "replicas_mean": s.mean_replicas, "replicas_peak": s.peak_replicas, "p95_target_s": s.target_s,
             "sim_p95_mean_s": round(s.mean_p95_s, 4), "sim_p95_peak_s": round(s.peak_p95_s, 4), "meets": s.meets}
            for s in simulated
        ],
        "cost": round(sum(a.cost for a in result.assessments.values()), 4),
        "closed_form_cost": round(result.start_cost, 4),
        "trials": result.trials,
        "seconds": round(result.seconds, 2),
        "judged": [repr(o) for o in judged],
    }
