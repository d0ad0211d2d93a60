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


def win_rate(outcomes, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(rate, low, high) from per-comparison outcomes: 1 = win, 0.5 = tie, 0 = loss (the paper's Figure 1 counts
    a tie as half a win), or, when several labelers judged each comparison, the share of their judgments won (a
    number between 0 and 1; the interval then resamples comparisons, not judgments)."""
    for o in outcomes:
        if not 0 <= o <= 1:
            raise ValueError(f"an outcome must lie between 0 (a loss) and 1 (a win), got {o!r}")
    return bootstrap_ci(outcomes, n_boot, seed)


def _least_squares(features: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    coef, *_ = np.linalg.lstsq(features, y, rcond=None)
    return float(coef[0]), float(coef[1])


def fit_bon(d, r) -> tuple[float, float]:
    """(alpha, beta) of R_bon(d) = d (alpha − beta d), Gao et al. 2022 Eq. 1, fitted by least squares; d = √KL
    from the initial policy and r = the gold (or proxy) score gained over it."""
    d, r = np.asarray(d, dtype=float), np.asarray(r, dtype=float)
    return _least_squares(np.stack([d, -d * d], axis=1), r)


def fit_rl(d, r) -> tuple[float, float]:
    """(alpha, beta) of R_RL(d) = d (alpha − beta log d), Gao et al. 2022 Eq. 2 (d log d taken as 0 at d = 0)."""
    d, r = np.asarray(d, dtype=float), np.asarray(r, dtype=float)
    dlogd = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
    return _least_squares(np.stack([d, -dlogd], axis=1), r)


def bon_kl(n: int) -> float:
    """KL(best-of-n ‖ initial policy) = log n − (n − 1)/n (the analytic form Gao et al. 2022 use, from Stiennon
    et al. 2020 App. G.3)."""
    return float(np.log(n) - (n - 1) / n)


def bon_fn(d: float, alpha: float, beta: float) -> float:
    """R_bon(d) = d (alpha − beta d)."""
    return d * (alpha - beta * d)


def rl_fn(d: float, alpha: float, beta: float) -> float:
    """R_RL(d) = d (alpha − beta log d), 0 at d = 0."""
    return d * (alpha - beta * float(np.log(d))) if d > 0 else 0.0
