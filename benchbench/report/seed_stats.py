"""The statistics of a comparison: B minus A over seeds with its confidence interval, a paired t
interval where both sides have the same seeds, Welch's otherwise (``scipy.stats``), and ties
(seeds equal up to float rounding) handled as a zero variance, not left to scipy's warning.
``benchbench.report.compare`` applies them to every measurement two runs share."""

from __future__ import annotations

import math

import pandas as pd

#: values closer than this many units in the last place of the largest value are the same
#: number as far as float64 can tell: accuracies are counts over n, and two seeds' equal
#: differences b - a come out up to a few ulps apart (0.95 - 0.9 against 0.85 - 0.8)
TIE_ULPS = 8


def tied(values, *, scale: float) -> bool:
    """Whether ``values`` are all equal up to float64 rounding at ``scale`` (``TIE_ULPS`` ulps):
    their variance is zero, and any spread scipy would compute is rounding noise (the
    "Precision loss occurred in moment calculation" warning)."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    return float(values.max() - values.min()) <= TIE_ULPS * np.finfo(float).eps * scale


def _welch(a: pd.Series, b: pd.Series, *, var_a: float, var_b: float, confidence: float):
    """Welch's t interval and p of B - A from the sides' variances (one of them may be 0: a
    side whose seeds tie); the formula of ``scipy.stats.ttest_ind(equal_var=False)``."""
    from scipy import stats

    diff = float(b.mean() - a.mean())
    terms = [var_a / len(a), var_b / len(b)]
    se = math.sqrt(sum(terms))
    df = sum(terms) ** 2 / sum(t * t / (n - 1) for t, n in zip(terms, (len(a), len(b)),
                                                                  strict=True) if t > 0)
    half = float(stats.t.ppf((1 + confidence) / 2, df)) * se
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    return diff - half, diff + half, p


def seed_difference(*, a: pd.Series, b: pd.Series, confidence: float = 0.95,
                    pair: bool = True) -> dict:
    """B - A for one measurement, ``a`` and ``b`` its values indexed by seed: paired by seed
    when both have the same seeds (and ``pair``), Welch otherwise. Keys: ``ROW_COLUMNS`` of
    ``benchbench.report.compare``; CI, p and significance are NaN/None when the seeds cannot
    give one (fewer than 2 on a side).

    Ties are handled, not left to scipy: where every seed's difference (paired) or both sides'
    values (Welch) are equal up to float rounding (``tied``), the variance is zero and the
    interval is degenerate, the difference itself (``degenerate_interval`` tells such rows);
    a Welch side that ties alone counts with variance 0."""
    from scipy import stats

    a, b = a.astype(float).sort_index(), b.astype(float).sort_index()
    paired = pair and sorted(a.index) == sorted(b.index)
    diff = float(b.mean() - a.mean())
    out = {"n_a": len(a), "n_b": len(b), "seeds_a": ",".join(str(int(s)) for s in a.index),
           "seeds_b": ",".join(str(int(s)) for s in b.index),
           "test": "paired" if paired else "welch", "mean_a": float(a.mean()),
           "mean_b": float(b.mean()), "b_minus_a": diff, "ci_low": math.nan,
           "ci_high": math.nan, "p_value": math.nan, "significant": None}
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-300)
    if paired:
        d = b - a.reindex(b.index)
        if len(d) < 2:
            return out
        degenerate = tied(d, scale=scale)
    else:
        if len(a) < 2 or len(b) < 2:
            return out
        tie_a, tie_b = tied(a, scale=scale), tied(b, scale=scale)
        degenerate = tie_a and tie_b
        if not degenerate and (tie_a or tie_b):  # one side's seeds agree: its variance is 0
            low, high, p = _welch(a, b, var_a=0.0 if tie_a else float(a.var(ddof=1)),
                                  var_b=0.0 if tie_b else float(b.var(ddof=1)),
                                  confidence=confidence)
            out.update(ci_low=low, ci_high=high, p_value=p, significant=bool(low > 0 or high < 0))
            return out
    if degenerate:  # every seed agrees: no spread, the interval is the point itself
        out.update(ci_low=diff, ci_high=diff, p_value=1.0 if diff == 0 else 0.0,
                   significant=diff != 0)
        return out
    result = (stats.ttest_rel(b.to_numpy(), a.reindex(b.index).to_numpy()) if paired
              else stats.ttest_ind(b.to_numpy(), a.to_numpy(), equal_var=False))
    low, high = result.confidence_interval(confidence)
    out.update(ci_low=float(low), ci_high=float(high), p_value=float(result.pvalue),
               significant=bool(low > 0 or high < 0))
    return out


def degenerate_interval(rows: pd.DataFrame) -> pd.Series:
    """Which compared rows have a degenerate interval (every seed tied: low = high)."""
    return rows["ci_low"].notna() & (rows["ci_low"] == rows["ci_high"])
