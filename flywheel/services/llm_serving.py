"""Ray Serve LLM deployments of the models the `vllm` agents name (models.yaml -> LLMConfig).

One vLLM engine deployment per model, behind one OpenAI-compatible ingress that
`ray.serve.llm.build_openai_app` builds; Flywheel mounts it at LLM_ROUTE (/llm) on
its own proxy, and the vllm agents call it there. GPU models get their accelerator
type (which ray_cluster.yaml's worker labels match) and a tensor-parallel size; CPU
models (vLLM's CPU build) get the CPU accelerator config and the thread binding and
KV-cache space that build needs. ray.serve.llm (and vLLM) are imported lazily, when an
app is built: the rest of Flywheel never needs them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from flywheel.services.model_weights import prepared_source
from flywheel.services.models import ModelSpec
from flywheel.services.settings import AppSettings

if TYPE_CHECKING:
    from ray.serve import Application

LLM_APP_NAME = "llm"
CPU_KVCACHE_GB = 1


def cpu_threads(cpus: float) -> str:
    """The cores a CPU engine binds its OpenMP threads to (VLLM_CPU_OMP_THREADS_BIND), e.g. '0-1'.

    >>> cpu_threads(2), cpu_threads(64) == f"0-{min(64, os.cpu_count() or 1) - 1}"
    ('0-1', True)
    """
    n = max(1, min(int(cpus), os.cpu_count() or 1))
    return f"0-{n - 1}"


def llm_config_args(model: ModelSpec) -> dict[str, Any]:
    """The keyword arguments of ray.serve.llm.LLMConfig for one model (weights must be prepared)."""
    engine: dict[str, Any] = {
        "max_model_len": model.engine.max_model_len,
        "max_num_seqs": model.engine.max_num_seqs,
        "dtype": model.engine.dtype,
        "enforce_eager": model.engine.enforce_eager,
    }
    env = {"HF_HUB_OFFLINE": "1"} if model.source.kind != "hub" else {}
    args: dict[str, Any] = {
        "model_loading_config": {"model_id": model.name, "model_source": prepared_source(model)},
        "deployment_config": {
            "autoscaling_config": {
                "min_replicas": model.autoscaling.min_replicas,
                "max_replicas": model.autoscaling.max_replicas,
                "target_ongoing_requests": model.autoscaling.target_ongoing_requests,
            },
            "ray_actor_options": {"num_cpus": model.accelerator.cpus},
        },
    }
    if model.accelerator.type == "cpu":
        args["accelerator_config"] = {"kind": "cpu"}
        env |= {
            "VLLM_CPU_KVCACHE_SPACE": str(CPU_KVCACHE_GB),
            "VLLM_CPU_OMP_THREADS_BIND": cpu_threads(model.accelerator.cpus),
        }
    else:
        args["accelerator_type"] = model.accelerator.type
        engine["tensor_parallel_size"] = model.accelerator.count
    args["engine_kwargs"] = engine
    args["runtime_env"] = {"env_vars": env}
    return args


def served_models(settings: AppSettings) -> list[ModelSpec]:
    """The models.yaml entries the settings' vllm agents name (each once)."""
    from flywheel.services.models import load_models

    found: dict[str, ModelSpec] = {}
    for agent in settings.agents.values():
        if agent.backend == "vllm" and agent.model not in found:
            found[agent.model] = load_models(agent.models_file).get(agent.model)
    return list(found.values())


def ray_cpus(settings: AppSettings) -> int:
    """CPUs to start a local Ray with: the machine's, or enough logical ones for every model's
    replicas and the rest of the app (else Serve LLM's ingress waits forever to be scheduled)."""
    need = sum(m.accelerator.cpus * m.autoscaling.max_replicas for m in served_models(settings))
    return int(max(os.cpu_count() or 1, need + 4 if need else 0))


def build_llm_app(models: list[ModelSpec]) -> "Application":
    """The OpenAI-compatible Serve application of `models` (one engine deployment each)."""
    from ray.serve.llm import LLMConfig, build_openai_app

    configs = [LLMConfig(**llm_config_args(m)) for m in models]
    return build_openai_app({"llm_configs": configs})
