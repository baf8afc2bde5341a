"""compare when seeds tie: no scipy warning leaks, the interval is said to be degenerate."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchbench.report.compare import compare
from benchbench.report.seed_stats import degenerate_interval, seed_difference, tied


def _no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning, scipy's RuntimeWarning included, fails
        return fn(*args, **kwargs)


def test_paired_differences_equal_up_to_rounding_are_a_degenerate_point():
    # accuracies over digits' 297 test images; each seed gains 3 examples
    a, b = pd.Series({0: 250 / 297, 1: 247 / 297}), pd.Series({0: 253 / 297, 1: 250 / 297})
    d = (b - a).to_numpy()
    assert d[0] != d[1]  # equal differences, not equal floats (0.0101010101010100x)
    noise = stats.ttest_rel(b.to_numpy(), a.to_numpy()).confidence_interval()
    assert 0 < noise.high - noise.low < 1e-12  # scipy: an "interval" of rounding noise
    got = _no_warnings(seed_difference, a=a, b=b)
    assert got["test"] == "paired"
    assert got["ci_low"] == got["ci_high"] == got["b_minus_a"]  # the point itself, exactly
    assert got["significant"] is True


def test_welch_ties_both_sides_and_one_side():
    a, b = pd.Series({0: 1.0, 1: 1.0}), pd.Series({2: 0.4, 3: 0.5, 4: 0.7})
    with pytest.warns(RuntimeWarning, match="Precision loss"):  # what compare used to leak
        stats.ttest_ind(b.to_numpy(), a.to_numpy(), equal_var=False)
    one = _no_warnings(seed_difference, a=a, b=b)
    assert one["test"] == "welch"
    # a side that ties has variance 0: Welch's interval is B's one-sample t interval about
    # the difference (df = n_b - 1); a different order of the same float operations: 1e-12
    half = stats.t.ppf(0.975, 2) * b.std(ddof=1) / math.sqrt(3)
    diff = b.mean() - 1.0
    assert (one["ci_low"], one["ci_high"]) == pytest.approx((diff - half, diff + half),
                                                            rel=1e-12)
    assert one["p_value"] == pytest.approx(stats.ttest_1samp(b - 1.0, 0).pvalue, rel=1e-9)
    both = _no_warnings(seed_difference, a=pd.Series({0: 0.3, 1: 0.1 + 0.2}),
                        b=pd.Series({2: 0.5, 3: 0.5, 4: 0.5}))
    assert both["test"] == "welch" and both["ci_low"] == both["ci_high"]


def test_values_that_differ_are_not_ties():
    assert tied([0.05, 0.05 + 4e-17], scale=1.0)
    assert not tied([0.05, 0.0501], scale=1.0)
    # seeds that disagree by one example in 297 still go to scipy's interval
    got = _no_warnings(seed_difference, a=pd.Series({0: 250 / 297, 1: 247 / 297}),
                       b=pd.Series({0: 253 / 297, 1: 251 / 297}))
    assert got["ci_low"] < got["b_minus_a"] < got["ci_high"]


def _tidy(values: dict[int, float], regime: str) -> pd.DataFrame:
    return pd.DataFrame([dict(model="mlp", regime=regime, dataset="digits", epoch=2,
                              split="test", attack="none", eps=0.0, metric="accuracy",
                              seed=seed, value=v) for seed, v in values.items()])


def test_compare_emits_no_warning_and_notes_the_degenerate_rows():
    paired = pd.concat([_tidy({0: 250 / 297, 1: 247 / 297, 2: 240 / 297}, "standard"),
                        _tidy({0: 253 / 297, 1: 250 / 297, 2: 243 / 297}, "trades")],
                       ignore_index=True)
    result = _no_warnings(compare, a=paired, b=paired, a_run="runs/x",
                          a_where={"regime": "standard"}, b_where={"regime": "trades"})
    assert degenerate_interval(result.rows).tolist() == [True]
    unpaired = pd.concat([_tidy({0: 1.0, 1: 1.0}, "standard"),
                          _tidy({2: 0.4, 3: 0.5, 4: 0.7}, "trades")], ignore_index=True)
    welch = _no_warnings(compare, a=unpaired, b=unpaired, a_run="runs/x",
                         a_where={"regime": "standard"}, b_where={"regime": "trades"})
    assert welch.rows["test"].tolist() == ["welch"]
    assert not degenerate_interval(welch.rows).any()  # B's seeds disagree: a real interval
    assert any("degenerate" in note and "1 of 1 row" in note for note in result.notes)
    assert np.isfinite(result.rows["p_value"]).all()
