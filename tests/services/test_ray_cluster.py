"""ray_cluster.yaml passes Ray's own cluster-launcher schema, and its GPU workers carry the models' accelerators."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from flywheel.services.models import load_models

CLUSTER = Path(__file__).resolve().parents[2] / "ray_cluster.yaml"


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


def test_the_cluster_file_passes_rays_schema(cluster):
    validate_config(prepare_config(copy.deepcopy(cluster)))  # Ray's defaults filled in, as `ray up` does; raises on an error


def test_the_schema_check_catches_a_bad_file(cluster):
    bad = copy.deepcopy(cluster)
    bad["available_node_types"]["gpu_l4"]["resources"]["GPU"] = "one"
    with pytest.raises(Exception, match="one"):
        validate_config(prepare_config(bad))


def test_every_gpu_model_has_a_worker_type_with_its_accelerator(cluster):
    types = cluster["available_node_types"]
    offered = {r.split(":", 1)[1]: t for t, spec in types.items() for r in spec["resources"] if r.startswith("accelerator_type:")}
    gpu_models = [m for m in load_models().models if m.accelerator.type != "cpu"]
    assert gpu_models
    for m in gpu_models:
        node = types[offered[m.accelerator.type]]
        assert node["resources"]["GPU"] >= m.accelerator.count
        assert node["labels"]["ray.io/accelerator-type"] == m.accelerator.type
        assert node["max_workers"] >= m.autoscaling.min_replicas
    assert "head_cpu" == cluster["head_node_type"] and "GPU" not in types["head_cpu"]["resources"]
    assert any("[gpu]" in c for c in cluster["setup_commands"])
