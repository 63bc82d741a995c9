"""The featurizer: what counts as a word, stable slots, bigrams and the prompt's weight."""

from __future__ import annotations


import numpy as np

from flywheel.learners.state import load, save
from flywheel.learners.features import HashedFeaturizer


def _same(a, b) -> bool:
    return bool(np.array_equal(a.indices, b.indices) and np.allclose(a.values, b.values))


def test_words_are_ascii_letter_and_digit_runs_of_the_lowercased_prompt() -> None:
    f = HashedFeaturizer(n_bits=12)
    plain = f.transform_one({"prompt": "refund my order 42"})
    assert _same(f.transform_one({"prompt": "Refund, MY order-42!"}), plain)
    # any other character separates words, multi-byte UTF-8 ones included
    assert _same(f.transform_one({"prompt": "café naïve"}), f.transform_one({"prompt": "caf na ve"}))
    assert not _same(f.transform_one({"prompt": "refund my order 43"}), plain)


def test_slots_do_not_depend_on_the_word_cache_or_the_process() -> None:
    warm = HashedFeaturizer(n_bits=12)
    text = {"prompt": "the invoice was charged twice, the invoice"}
    first = warm.transform_one(text)
    assert _same(warm.transform_one(text), first)  # the cached hashes give the same slots
    cold = load(save(warm, "featurizer"), "featurizer")
    assert "_hashes" in warm.__dict__ and "_hashes" not in cold.__dict__  # the cache is not saved
    assert _same(cold.transform_one(text), first)
    assert cold == warm and cold is not warm


def test_bigrams_see_word_order_and_repeated_slots_add_up() -> None:
    with_pairs = HashedFeaturizer(n_bits=16)
    no_pairs = HashedFeaturizer(n_bits=16, bigrams=False)
    ab, ba = {"prompt": "alpha beta"}, {"prompt": "beta alpha"}
    assert _same(no_pairs.transform_one(ab), no_pairs.transform_one(ba))
    assert not _same(with_pairs.transform_one(ab), with_pairs.transform_one(ba))
    f = no_pairs.transform_one({"prompt": "spam spam spam"})
    words = f.values[f.indices != no_pairs._slot("__bias__")]
    assert len(words) == 1 and np.isclose(words[0], 3 / np.sqrt(3))  # one slot, three tokens' weight


def test_prompt_weight_scales_the_words_against_the_fields() -> None:
    f = HashedFeaturizer(fields=["product"], n_bits=16, bigrams=False, prompt_weight=0.3)
    x = f.transform_one({"product": "billing", "prompt": "one two three four"})
    field_slots = {f._slot("__bias__"), f._slot("product=billing")}
    words = np.array([v for i, v in zip(x.indices.tolist(), x.values.tolist()) if i not in field_slots])
    assert np.isclose(np.sum(words**2), 0.3**2)  # four distinct words, each 0.3 / 2
    assert sorted(v for i, v in zip(x.indices.tolist(), x.values.tolist()) if i in field_slots) == [1.0, 1.0]
