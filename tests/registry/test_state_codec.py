"""The safe state format: round trips, and everything that is not it refused with a clear error."""

from __future__ import annotations

import io
import json
import pickle  # only to craft the hostile inputs this format must refuse
import zipfile

import numpy as np
import pytest

from flywheel.registry import state_codec
from flywheel.registry.state_codec import FORMAT, UnsafeState, decode, encode


class Box:
    def __init__(self, items):
        self.items = items


def _archive(document: dict, **arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    raw = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    np.savez(out, __document__=raw, **arrays)
    return out.getvalue()


def test_a_tree_of_data_arrays_and_allowed_objects_round_trips():
    from collections import deque

    tree = Box({"n": 3, "x": 1.5, "inf": float("inf"), "t": (1, "a"), "s": {2, 1}, "d": deque([1, 2], maxlen=3),
                "pairs": {(1, 2): "p"}, "w": np.arange(6.0).reshape(2, 3), "i": np.array([1, 2], dtype=np.int64)})
    back = decode(encode(tree, kind="box"), {"Box": Box}, kind="box")
    items = back.items
    assert isinstance(back, Box) and items["n"] == 3 and items["inf"] == float("inf")
    assert items["t"] == (1, "a") and items["s"] == {1, 2} and items["pairs"] == {(1, 2): "p"}
    assert items["d"] == deque([1, 2]) and items["d"].maxlen == 3
    assert items["w"].tolist() == [[0, 1, 2], [3, 4, 5]] and items["i"].dtype == np.int64


def test_a_pickle_is_refused_saying_it_is_the_old_format():
    with pytest.raises(UnsafeState, match="a pickle .*format_version 1.*could run code"):
        decode(pickle.dumps(Box([1])), {"Box": Box}, kind="box")


def test_a_class_not_allowed_is_refused_by_name_and_never_built():
    doc = {"format": FORMAT, "format_version": 1, "kind": "box",
           "tree": {"$object": "Popen", "attrs": {"args": ["rm", "-rf", "/"]}}}
    with pytest.raises(UnsafeState, match="class 'Popen' is not one this state may hold"):
        decode(_archive(doc), {"Box": Box}, kind="box")


def test_an_object_array_inside_the_archive_is_refused():
    out = io.BytesIO()
    np.savez(out, __document__=np.frombuffer(b"{}", dtype=np.uint8), evil=np.array([Box(1)], dtype=object))
    with pytest.raises(UnsafeState, match="not plain data"):
        decode(out.getvalue(), {"Box": Box}, kind="box")


def test_garbage_a_wrong_kind_and_dunder_attributes_are_refused():
    with pytest.raises(UnsafeState, match="not a flywheel.state archive"):
        decode(b"PK not really a zip", {}, kind="box")
    with pytest.raises(UnsafeState, match="holds a 'box', not a 'policy'"):
        decode(encode(Box(1), kind="box"), {"Box": Box}, kind="policy")
    doc = {"format": FORMAT, "format_version": 1, "kind": "box",
           "tree": {"$object": "Box", "attrs": {"__class__": "x"}}}
    with pytest.raises(UnsafeState, match="__class__ is not an attribute it may set"):
        decode(_archive(doc), {"Box": Box}, kind="box")
    doc["tree"] = {"$array": "missing"}
    with pytest.raises(UnsafeState, match="array 'missing' is missing"):
        decode(_archive(doc), {}, kind="box")


def test_a_newer_format_is_refused_and_an_older_one_migrated(monkeypatch):
    newer = {"format": FORMAT, "format_version": 99, "kind": "box", "tree": 1}
    with pytest.raises(UnsafeState, match="format_version 99 is newer"):
        decode(_archive(newer), {}, kind="box")
    older = {"format": FORMAT, "format_version": 0, "kind": "box", "value": 7}
    with pytest.raises(UnsafeState, match="format_version 0 has no migration"):
        decode(_archive(older), {}, kind="box")
    monkeypatch.setitem(state_codec.MIGRATIONS, 0, lambda d: {**d, "format_version": 1, "tree": d["value"] * 2})
    assert decode(_archive(older), {}, kind="box") == 14


def test_an_oversized_archive_is_refused_before_it_is_read(monkeypatch):
    monkeypatch.setattr(state_codec, "MAX_BYTES", 1000)
    with pytest.raises(UnsafeState, match="larger than"):
        decode(encode(Box(np.zeros(1000)), kind="box"), {"Box": Box}, kind="box")


def test_a_zip_that_is_not_npz_is_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("payload.pkl", pickle.dumps(Box(1)))
    with pytest.raises(UnsafeState):
        decode(out.getvalue(), {"Box": Box}, kind="box")
