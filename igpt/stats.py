"""Uncertainty for the comparisons the paper makes: bootstrap 95% intervals (Efron & Tibshirani 1993)."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(values, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` and the percentile bootstrap interval at level 1 - alpha."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(lo), float(hi)


def paired_diff_ci(a, b, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(mean(a - b), low, high) for paired scores of two policies on the same prompts."""
    return bootstrap_ci(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), n_boot, seed)
