"""Expected calibration error against cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from flywheel.eval.calibration import ece_per_arm, expected_calibration_error


def test_ece_by_hand_ten_bins():
    # bin [0.1, 0.2): p 0.1, 0.1, outcomes 0, 0 -> gap 0.1, weight 2/5
    # bin [0.7, 0.8): p 0.7, outcome 1 -> gap 0.3, weight 1/5
    # last bin (1.0 goes there): p 0.9, 1.0 (mean 0.95), outcomes 1, 0 (mean 0.5) -> gap 0.45, weight 2/5
    ece = expected_calibration_error([0.1, 0.1, 0.7, 0.9, 1.0], [0, 0, 1, 1, 0])
    assert ece == pytest.approx(0.4 * 0.1 + 0.2 * 0.3 + 0.4 * 0.45)


def test_calibrated_predictions_score_zero_and_graded_outcomes_count():
    assert expected_calibration_error([0.25] * 4, [0, 0, 0, 1]) == 0.0
    assert expected_calibration_error([0.5, 0.5], [0.5, 0.5]) == 0.0  # graded outcomes: mean grade
    assert expected_calibration_error([0.0, 1.0], [1.0, 0.0]) == 1.0


def test_per_arm_scores_only_the_decisions_an_arm_was_chosen_for():
    rng = np.random.default_rng(0)
    p = rng.random(4000)
    y = (rng.random(4000) < p).astype(float)  # calibrated by construction
    chosen = np.where(np.arange(4000) % 2 == 0, "good", "over")
    p_seen = np.where(chosen == "good", p, np.minimum(1.0, p + 0.3))  # "over" predicts 0.3 too high
    out = ece_per_arm(["good", "over", "never"], chosen.tolist(), p_seen, y)
    assert out["good"] < 0.05
    assert out["over"] > 0.2
    assert out["never"] is None


@pytest.mark.parametrize("p, y, bins, field", [([0.5], [1.0, 0.0], 10, "one length"), ([1.5], [1.0], 10, "predicted"),
                                               ([0.5], [1.0], 0, "bins"), ([], [], 10, "predicted")])
def test_bad_input_is_refused_naming_it(p, y, bins, field):
    with pytest.raises(ValueError, match=field):
        expected_calibration_error(p, y, bins)
