"""Work counters shared by the PPO benchmark scripts. ppo_trl.py runs in the TRL 1.12 venv, so this file needs
nothing but torch."""

import torch


def count_optimizer_steps() -> dict:
    """Wrap AdamW.step so that every call is counted; returns the counter, {"n": steps so far}."""
    steps = {"n": 0}
    adam_step = torch.optim.AdamW.step

    def counted(self, *a, **k):
        steps["n"] += 1
        return adam_step(self, *a, **k)

    torch.optim.AdamW.step = counted
    return steps
