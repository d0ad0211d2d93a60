"""Training faults: stop a stage at the first NaN or Inf in a loss term or the gradients, and say what to try.

A non-finite value poisons the weights at the next optimizer step and every checkpoint after it, so the stage stops
before that step: the last checkpoint stays the last good one. Every training loop calls one function per step,

    check_finite(step, {"policy_loss": 0.12, "value_loss": 0.4, "grad_norm": 1.3}, last_good, stage="ppo")

where `last_good` is the previous call's step and terms (or None), kept by the caller:

    if last_good is None or all finite: last_good = {"step": step, **terms}

Trainer-based stages get this through igpt.hf.FiniteGuard, a TrainerCallback.
"""

from __future__ import annotations

import math

from igpt.errors import StageError

FIXES = (
    "lower the learning rate (e.g. halve {lr_key}) or lengthen the warm-up",
    "check the data for empty, huge or odd rows (a malformed file is the usual cause of a sudden spike)",
    "train in fp32 (precision=fp32): bf16/fp16 overflow where fp32 does not",
)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def check_finite(step: int, terms: dict[str, float], last_good: dict | None = None, stage: str = "training",
                 checkpoint: str | None = None, lr_key: str | None = None) -> None:
    """Raise StageError if any term (a loss term, a gradient norm) is NaN or Inf; do nothing otherwise.

    The message names the step, the non-finite terms, the last finite values (`last_good`: {"step": n, term:
    value, ...}), where the last good checkpoint is (`checkpoint`; None: the stage had not saved one yet), and the
    usual fixes (`lr_key`: the config key of the learning rate, default "<stage>.lr")."""
    bad = {k: v for k, v in terms.items() if v is not None and not math.isfinite(v)}
    if not bad:
        return
    lines = [f"{stage}: training diverged at step {step}: "
             + ", ".join(f"{k} is {_fmt(v)}" for k, v in bad.items())
             + (f" (finite: {', '.join(f'{k} = {_fmt(v)}' for k, v in terms.items() if k not in bad)})"
                if len(bad) < len(terms) else "")]
    if last_good:
        good = {k: v for k, v in last_good.items() if k != "step"}
        lines.append(f"last finite values (step {last_good.get('step', '?')}): "
                     + ", ".join(f"{k} = {_fmt(v)}" for k, v in good.items()))
    else:
        lines.append("no step before it was finite: the very first step diverged")
    if checkpoint:
        lines.append(f"the stage stopped before the bad step reached the weights; the last good checkpoint is kept: "
                     f"{checkpoint} (running the stage again resumes from it; delete it to start over with new "
                     "settings)")
    else:
        lines.append("the stage stopped before the bad step reached the weights; no checkpoint had been saved yet")
    lines.append("usual fixes: " + "; ".join(f.format(lr_key=lr_key or f"{stage}.lr") for f in FIXES))
    raise StageError("\n  ".join(lines))
