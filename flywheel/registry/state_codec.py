"""The safe serialized form of learned state: arrays plus a JSON document, never a pickle.

A state is a tree of plain values (None, bools, numbers, strings, lists, dicts),
numpy arrays, and objects of classes the caller allows by name. `encode` writes it
as one `.npz` archive: every array under its own name, and the JSON document (the
tree, with each array replaced by a reference to its name, each object by its class
name and attributes) under `__document__`. `decode` reads it back with
`numpy.load(allow_pickle=False)`: an object array, a pickle, a class not allowed, a
malformed document or a format this code does not know is refused with
`UnsafeState`, naming what was wrong. Loading builds only instances of the allowed
classes (without calling their constructors) and fills their attributes with data:
no code of the archive's choosing runs.

The document records `format` and `format_version`. A version written by older code
is migrated by the functions in MIGRATIONS (none yet: version 1 is the first), a
newer one is refused, and a pickle (what versions were before this format) is
refused with a message that says so.

>>> import numpy as np
>>> class Counter:
...     def __init__(self):
...         self.n, self._w = 3, np.arange(4.0)
>>> data = encode(Counter(), kind="counter")
>>> back = decode(data, {"Counter": Counter}, kind="counter")
>>> back.n, back._w.tolist()
(3, [0.0, 1.0, 2.0, 3.0])
>>> decode(b"\\x80\\x04K\\x01.", {}, kind="counter")
Traceback (most recent call last):
...
flywheel.registry.state_codec.UnsafeState: state: a pickle (the format before format_version 1); refused, since loading it could run code: publish the version again from the ledger
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import deque
from dataclasses import fields, is_dataclass
from typing import Any, Callable, Mapping

import numpy as np

FORMAT = "flywheel.state"
FORMAT_VERSION = 1
DOCUMENT = "__document__"
MAX_ENTRIES = 10_000  # arrays in one archive
MAX_BYTES = 1 << 30  # uncompressed size of one archive
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
"""format_version -> a function from a document of that version to one of the next."""


class UnsafeState(ValueError):
    """A state that is not in the safe format, or names something not allowed: refused."""


class Codec:
    """Hooks for classes whose attributes are not plain data (a detector backed by native code).

    `save(obj) -> tree` and `load(tree) -> obj`, where the tree is plain data and arrays.
    """

    def __init__(self, save: Callable[[Any], Any], load: Callable[[Any], Any]):
        self.save = save
        self.load = load


def encode(obj: Any, *, kind: str, codecs: Mapping[type, tuple[str, Codec]] | None = None) -> bytes:
    """The archive of `obj` (a tree of data, arrays and objects), labelled `kind`."""
    arrays: dict[str, np.ndarray] = {}
    special = dict(codecs or {})

    def walk(v: Any) -> Any:
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, float)) and not isinstance(v, np.generic):
            return v
        if isinstance(v, np.generic):
            return walk(v.item())
        if isinstance(v, np.ndarray):
            if v.dtype == object:
                raise UnsafeState("state: an array of Python objects cannot be stored safely")
            name = f"a{len(arrays)}"
            arrays[name] = v
            return {"$array": name}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, tuple):
            return {"$tuple": [walk(x) for x in v]}
        if isinstance(v, (set, frozenset)):
            return {"$set": [walk(x) for x in sorted(v)]}
        if isinstance(v, deque):
            return {"$deque": [walk(x) for x in v], "maxlen": v.maxlen}
        if isinstance(v, dict):
            if all(isinstance(k, str) for k in v):
                return {"$dict": {k: walk(x) for k, x in v.items()}}
            return {"$pairs": [[walk(k), walk(x)] for k, x in v.items()]}
        hook = special.get(type(v))
        if hook is not None:
            return {"$codec": hook[0], "tree": walk(hook[1].save(v))}
        if hasattr(v, "model_dump") and hasattr(type(v), "model_validate"):  # a pydantic model
            return {"$model": type(v).__name__, "data": v.model_dump(mode="json")}
        if is_dataclass(v):
            return {"$object": type(v).__name__, "attrs": {f.name: walk(getattr(v, f.name)) for f in fields(v)}}
        if hasattr(v, "__dict__"):
            transient = set(getattr(type(v), "_transient", ()))
            attrs = {k: walk(x) for k, x in vars(v).items() if k not in transient}
            return {"$object": type(v).__name__, "attrs": attrs}
        raise UnsafeState(f"state: a {type(v).__name__} cannot be stored safely")

    document = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "tree": walk(obj)}
    arrays[DOCUMENT] = np.frombuffer(json.dumps(document, allow_nan=True).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return out.getvalue()


def decode(
    data: bytes,
    classes: Mapping[str, type],
    *,
    kind: str,
    codecs: Mapping[str, Codec] | None = None,
) -> Any:
    """The object of an archive written by `encode`, building only the `classes` allowed (by name)."""
    if data[:1] == b"\x80":
        raise UnsafeState(
            "state: a pickle (the format before format_version 1); refused, since loading it could run code: "
            "publish the version again from the ledger"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except zipfile.BadZipFile as e:
        raise UnsafeState(f"state: not a {FORMAT} archive ({e})") from e
    if len(infos) > MAX_ENTRIES or sum(i.file_size for i in infos) > MAX_BYTES:
        raise UnsafeState(f"state: the archive is larger than {MAX_ENTRIES} arrays or {MAX_BYTES} bytes")
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
        arrays = {name: npz[name] for name in npz.files}
    except ValueError as e:  # numpy refuses object arrays and pickles when allow_pickle=False
        raise UnsafeState(f"state: an array that is not plain data ({e})") from e
    except Exception as e:
        raise UnsafeState(f"state: unreadable archive ({e})") from e
    raw = arrays.pop(DOCUMENT, None)
    if raw is None or raw.dtype != np.uint8:
        raise UnsafeState(f"state: no {DOCUMENT} in the archive")
    try:
        document = json.loads(raw.tobytes().decode())
    except ValueError as e:
        raise UnsafeState(f"state: {DOCUMENT} is not JSON ({e})") from e
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UnsafeState(f"state: format is not {FORMAT!r}")
    version = document.get("format_version")
    if not isinstance(version, int):
        raise UnsafeState("state: format_version is missing")
    if version > FORMAT_VERSION:
        raise UnsafeState(
            f"state: format_version {version} is newer than this code reads ({FORMAT_VERSION}): upgrade Flywheel"
        )
    while version < FORMAT_VERSION:
        migrate = MIGRATIONS.get(version)
        if migrate is None:
            raise UnsafeState(f"state: format_version {version} has no migration to {version + 1}")
        document, version = migrate(document), version + 1
    if document.get("kind") != kind:
        raise UnsafeState(f"state: holds a {document.get('kind')!r}, not a {kind!r}")
    hooks = dict(codecs or {})

    def build(v: Any) -> Any:
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [build(x) for x in v]
        if not isinstance(v, dict) or len(v) == 0:
            raise UnsafeState(f"state: unexpected {type(v).__name__} in the document")
        tag = next(iter(v))
        if tag == "$array":
            if v["$array"] not in arrays:
                raise UnsafeState(f"state: array {v['$array']!r} is missing")
            return arrays[v["$array"]]
        if tag == "$tuple":
            return tuple(build(x) for x in v["$tuple"])
        if tag == "$set":
            return {build(x) for x in v["$set"]}
        if tag == "$deque":
            return deque((build(x) for x in v["$deque"]), maxlen=v.get("maxlen"))
        if tag == "$dict":
            return {str(k): build(x) for k, x in v["$dict"].items()}
        if tag == "$pairs":
            return {build(k): build(x) for k, x in v["$pairs"]}
        if tag == "$codec":
            hook = hooks.get(v["$codec"])
            if hook is None:
                raise UnsafeState(f"state: {v['$codec']!r} is not a type this state may hold")
            return hook.load(build(v["tree"]))
        if tag in ("$object", "$model"):
            name = v[tag]
            cls = classes.get(name)
            if cls is None:
                raise UnsafeState(f"state: class {name!r} is not one this state may hold")
            if tag == "$model":
                return cls.model_validate(v["data"])
            obj = cls.__new__(cls)
            attrs = v.get("attrs")
            if not isinstance(attrs, dict):
                raise UnsafeState(f"state: {name} has no attributes")
            for attr, x in attrs.items():
                if not isinstance(attr, str) or attr.startswith("__"):
                    raise UnsafeState(f"state: {name}.{attr} is not an attribute it may set")
                object.__setattr__(obj, attr, build(x))
            restore = getattr(obj, "_after_load", None)
            if callable(restore):
                restore()
            return obj
        raise UnsafeState(f"state: unknown tag {tag!r}")

    try:
        return build(document.get("tree"))
    except UnsafeState:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise UnsafeState(f"state: malformed document ({e!r})") from e

