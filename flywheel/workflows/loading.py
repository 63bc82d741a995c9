"""Load YAML files into pydantic models, failing with the file, the field and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def packaged_configs() -> Path:
    """The folder of the default configs shipped inside the package (flywheel/configs).

    app.yaml, policies.yaml, serve.yaml, workflows/ and scenarios/: what the service and
    the benchmarks use when no other file is named, from any working directory.
    """
    return Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
    """A config file that cannot be used: names the file, the field and the reason."""

    def __init__(self, path: Path | str, problems: list[tuple[str, str]]):
        self.path = str(path)
        self.problems = problems
        lines = [f"{self.path}: {field or '<file>'}: {reason}" for field, reason in problems]
        super().__init__("invalid config\n  " + "\n  ".join(lines))


def _field_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def config_error(source: Path | str, error: ValidationError) -> ConfigError:
    """The ConfigError of a failed validation: each problem's field path and reason, under `source`."""
    return ConfigError(source, [(_field_path(err["loc"]), err["msg"]) for err in error.errors(include_url=False)])


def validate_data(data: object, model: type[M], source: Path | str) -> M:
    """Validate already-parsed data against `model`, raising ConfigError on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise config_error(source, e) from None


def load_model(path: Path | str, model: type[M]) -> M:
    """Read one YAML file into `model`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(path, [("", f"cannot read: {e.strerror}")]) from None
    except yaml.YAMLError as e:
        raise ConfigError(path, [("", f"not valid YAML: {e}")]) from None
    return validate_data(data, model, path)


def load_dir(directory: Path | str, model: type[M]) -> dict[str, M]:
    """Every *.yaml in `directory` loaded into `model`, keyed by the file's stem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(directory, [("", "not a directory")])
    return {p.stem: load_model(p, model) for p in sorted(directory.glob("*.yaml"))}
