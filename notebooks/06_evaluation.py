# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Evaluation: the paper's results, in the mini-world
#
# *Follows: InstructGPT §4 "Results" (Figures 1, 3, 4, 6, 7 and the alignment tax), and Gao et al. 2022,
# "Scaling laws for reward model overoptimization".*
#
# Every policy answers the same held-out prompts from held-out users:
#
# | name | what it is |
# |---|---|
# | GPT | the base model of notebook 02, prompt in the chat format |
# | GPT-prompted | the base model with three solved examples before the prompt |
# | SFT | notebook 03 |
# | PPO, PPO-ptx | notebook 05 (γ = 0 and γ > 0) |
# | best-of-n | n samples from SFT, the one the reward model likes best |
#
# The **held-out labeler panel** — labelers who never labelled training data — judges each answer against SFT's
# answer to the same prompt (the paper's Figure 1) and rates it 1–7; the training panel judges again, to check
# the two agree. The world's gold score marks what the paper's labelers marked: hallucinations, failed
# constraints, toxic language. Then truthfulness, toxicity with and without a "be respectful" instruction, the
# alignment tax on pretraining loss and few-shot tasks, and reward over-optimisation.
#
# **In:** `base/`, `sft/`, `rm/`, `ppo/`, `ppo_ptx/` (with `snapshots/`), `data/eval_prompts`.
# **Out:** `eval/results.json` (one record per policy and metric, with 95% intervals, n, seeds and the config
# hash), `eval/results.md`, `eval/samples.jsonl`, `eval/figures/*.html`.

# %% tags=["parameters"]
PROFILE: str = ""  # config profile, empty for tiny
SMOKE: bool = False  # True for test-sized world and models (seconds)
RUN_DIR: str = ""  # run folder, empty for the default of the profile (runs/tiny)
OVERRIDES: list = []  # extra overrides such as eval.n_prompts=100
SEED: int = -1  # training seed; -1 keeps the profile's (0)

# %%
import json

from IPython.display import Markdown, display

from igpt import evaluate, report, stats
from igpt.notebooks import notebook_config
from igpt.widgets import sample_comparison

cfg = notebook_config(PROFILE, smoke=SMOKE, run_dir=RUN_DIR, overrides=OVERRIDES,
                      seed=None if SEED < 0 else SEED)
e = cfg.eval
print(f"{e.n_prompts} held-out prompts, best-of-{e.best_of_n}, {e.bootstrap} bootstrap resamples, "
      f"over-optimisation on {e.overopt_prompts} prompts up to n = {e.overopt_max_n}")

# %% [markdown]
# ## The measures, checked on numbers you can do by hand
#
# **Win rate.** Each prompt gives one comparison: 1 if the labeler prefers the policy's answer to SFT's, 0 if
# not, ½ for identical answers. Four comparisons (1, 1, 0, ½) give a win rate of 2.5 / 4 = 62.5 %. The 95 %
# interval comes from resampling the comparisons (bootstrap). The paper had each comparison judged once; with
# `eval.whole_panel` (on in the tiny profile) every labeler of the panel judges it and the prompt counts the share
# of their judgments (three of four labelers prefer the policy: 0.75), so which labeler was drawn no longer moves
# the rate; the interval still resamples prompts.
#
# **Best-of-n moves away from SFT by a known amount.** Picking the best of n samples is a policy whose KL from the
# sampling policy is log n − (n − 1)/n (Stiennon et al. 2020): 0 for n = 1, log 2 − ½ ≈ 0.193 for n = 2. Gao et
# al. plot reward against d = √KL and fit R(d) = d(α − βd) for best-of-n and R(d) = d(α − β log d) for RL: the
# gold score first rises with d, then falls once the policy exploits the reward model's mistakes.

# %%
rate, lo, hi = stats.win_rate([1, 1, 0, 0.5], n_boot=1000, seed=0)
print(f"win rate {rate:.3f}, 95% interval [{lo:.2f}, {hi:.2f}]")
assert rate == 0.625
assert stats.bon_kl(1) == 0 and abs(stats.bon_kl(2) - 0.1931) < 1e-4
alpha, beta = stats.fit_bon([0.5, 1.0, 1.5, 2.0], [stats.bon_fn(d, 0.4, 0.1) for d in (0.5, 1.0, 1.5, 2.0)])
print(f"fit recovers alpha = {alpha:.3f}, beta = {beta:.3f} (made with 0.4, 0.1)")

# %% [markdown]
# ## Run the evaluation
#
# `igpt eval` does the same from the command line. It writes `eval/` whole, or not at all.

# %%
out = evaluate.evaluate(cfg)
results = json.loads((out / "results.json").read_text())

# %% [markdown]
# ## The targets
#
# The issue set targets for the tiny run, taken from the paper's findings. The table is computed from
# `results.json`; a target not met says so.

# %%
display(Markdown("\n".join(["| target | ours | met | note |", "|---|---|---|---|"] + [
    f"| {t['target']} | {t['ours']} | {report.met_word(t['met'])} | {t['note']} |" for t in results["targets"]])))

# %% [markdown]
# ## Win rate against SFT (the paper's Figure 1) and Likert ratings (Figure 3)

# %%
report.win_rate_figure(results).show()
report.likert_figure(results).show()

# %% [markdown]
# ## The full table, with the paper's numbers beside ours

# %%
display(Markdown((out / "results.md").read_text()))

# %% [markdown]
# ## Truthfulness, toxicity, the alignment tax

# %%
report.truth_toxicity_figure(results).show()
report.alignment_tax_figure(results).show()

# %% [markdown]
# ## Reward over-optimisation
#
# Points are the gain over SFT in gold score (solid fit) and in reward-model score (dotted fit), for best-of-n
# (n = 1, 2, 4, …) and for the saved PPO snapshots. The reward model's score keeps rising with d; where the gold
# score bends down, the policy is exploiting the reward model.

# %%
report.overoptimisation_figure(results).show()

# %% [markdown]
# ## Sample comparison
#
# Choose a category, sort by where the policies disagree most (or where PPO-ptx gains or loses most against
# SFT), and read the answers side by side with their reward-model and gold scores, the held-out labeler's
# ranking, and for the RL policies the per-token KL from SFT (red: more likely than under SFT; hover for the
# number).

# %%
cmp = sample_comparison(cfg.path)
display(cmp)

# %% [markdown]
# ## What reproduced, and what did not
#
# The lines below are generated from this run's `results.json`, so they stay true whatever the run found.

# %%
met = [t for t in results["targets"] if t["met"]]
missed = [t for t in results["targets"] if t["met"] is False]
lines = [f"**{len(met)} of {len(results['targets'])} targets met.**", ""]
lines += [f"* reproduced: {t['target']} — {t['ours']}" + (f" ({t['note']})" if t["note"] else "") for t in met]
lines += [f"* **not reproduced**: {t['target']} — {t['ours']}" for t in missed]
lines += [f"* not measurable here: {t['target']} — {t['note']}" for t in results["targets"] if t["met"] is None]
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## What to inspect, and why results can differ from the paper
#
# * **Win rates** near 50 % with intervals that straddle it mean the policies are not distinguishable on this many
#   prompts; raise `eval.n_prompts`. The held-out and training panels should agree within a few points: if they
#   do not, the policy learned one panel's taste rather than the task (the paper's §4.1 check).
# * **The reward model sets the ceiling.** At the tiny scale the reward model's held-out accuracy stays near the
#   labelers' own agreement on SFT samples, which are close to one another, and it learns mostly what a good
#   answer *looks like* rather than whether it is *true*. PPO then finds answers the reward model over-rates: the
#   over-optimisation plot shows the reward-model score rising while the gold score flattens or falls, and the
#   sample comparison (sorted by "PPO-ptx loses most") shows what the policy learned instead.
# * **The alignment tax**: PPO's pretraining loss rises above SFT's; the ptx term should pull PPO-ptx back toward
#   SFT. The few-shot tasks move less, because the tiny base model solves few of them in the first place.
# * **Hallucination and toxicity** rates are small counts at this size: read the intervals before the means. The
#   closed-domain hallucination rate is measured on its own set of closed QA, extraction and summary prompts
#   (`eval.n_closed`; the held-out API prompts hold only a dozen or so), beside those answers' helpfulness: a
#   policy that hallucinates less because it says less has not become more honest.
#
# **Next:** change a knob (`ppo.kl_coef`, `ppo.ptx_coef`, `reward.k`, the world's `labeler_noise`) and run the
# pipeline again into a new run folder; `results.json` files of two runs compare record by record.
