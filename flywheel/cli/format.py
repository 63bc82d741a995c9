"""Formatting shared by the CLI's benchmark tables."""

from __future__ import annotations

from typing import Any


def fmt(v: Any, digits: int = 3) -> str:
    """A table cell: '-' for None, floats to `digits` places, anything else as str."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)
