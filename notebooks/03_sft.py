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
# # 03 · Supervised fine-tuning (SFT) on the labelers' demonstrations
#
# *Follows: InstructGPT §3.5 "Supervised fine-tuning (SFT)" and App. C.1.*
#
# The first step of the paper's Figure 2: labelers write the answer they want for a prompt, and the base model is
# fine-tuned on these demonstrations with the ordinary language-modelling loss — **on the completion only**; the
# prompt is context, not a target. The paper trains 16 epochs with cosine decay to 10 % of the peak learning rate,
# no warm-up, residual dropout 0.2, and picks the epoch by the reward model's score on validation prompts (App.
# C.1), noting that validation loss starts to rise after one epoch while the RM score keeps improving. Before the
# reward model exists (notebook 04) this stage can only select by validation loss, which is what it does.
#
# **In:** `base/`, `tokenizer/`, `data/sft`. **Out:** `sft/` (model, `summary.json`, `samples.jsonl`),
# `sft_metrics.jsonl`. Trained with TRL's `SFTTrainer`.

# %% tags=["parameters"]
PROFILE: str = ""  # config profile, empty for tiny
SMOKE: bool = False  # True for test-sized world and models (seconds)
RUN_DIR: str = ""  # run folder, empty for the default of the profile (runs/tiny)
OVERRIDES: list = []  # extra overrides such as sft.epochs=4
SEED: int = -1  # training seed; -1 keeps the profile's (0)

# %%
import html
import json

from IPython.display import HTML, display

from igpt import data, plots, pretrain, sft
from igpt.notebooks import notebook_config

cfg = notebook_config(PROFILE, smoke=SMOKE, run_dir=RUN_DIR, overrides=OVERRIDES,
                      seed=None if SEED < 0 else SEED)
demos = data.load(cfg, "sft")
print(demos)
print(json.dumps(demos["train"][0], indent=1))

# %% [markdown]
# ## The objective, and its loss mask
#
# L_SFT = −(1/|y|) Σₜ log π(yₜ | x, y₍<ₜ₎): the sum runs over the completion y only. TRL implements this with
# `completion_only_loss`: the labels of prompt tokens are set to −100, which cross-entropy ignores. Below, one
# demonstration as the trainer sees it: green tokens are trained on (label = the token), grey ones are context
# (label = −100).

# %%
tok = pretrain.load_tokenizer(pretrain.tokenizer_path(cfg))
row = demos["train"][0]
ex = sft.to_prompt_completion([row])
prompt_ids = tok(ex["prompt"][0])["input_ids"]
full_ids = tok(ex["prompt"][0] + ex["completion"][0])["input_ids"] + [tok.eos_token_id]
labels = [-100] * len(prompt_ids) + full_ids[len(prompt_ids):]
assert full_ids[: len(prompt_ids)] == prompt_ids  # the prompt tokenises the same alone and in context
print(f"{sum(lab != -100 for lab in labels)} of {len(labels)} tokens carry a label")
display(HTML("".join(
    f'<span style="background:{"#b7e4c7" if lab != -100 else "#e9ecef"};margin:1px;padding:1px 3px;'
    f'font-family:monospace;white-space:pre">{html.escape(tok.decode([t]))}</span>'
    for t, lab in zip(full_ids, labels))))

# %% [markdown]
# ## Train

# %%
sft_dir = sft.train(cfg)
summary = json.loads((sft_dir / "summary.json").read_text())

# %% [markdown]
# ## What to inspect
#
# * **Training loss** falls within the first epoch and keeps falling; **validation loss** (one point per epoch)
#   flattens or rises after a few epochs — the overfitting the paper also saw. The kept checkpoint is the epoch with
#   the lowest validation loss (`best_checkpoint` in `summary.json`).
# * **Gold score, base vs SFT** on held-out prompts from held-out users: SFT should be clearly higher, the 95 %
#   interval of the difference (printed below) well above 0.
# * **Pretraining validation loss** of SFT vs base (printed below): SFT's is higher — fine-tuning already costs
#   some of the web's likelihood before any RL. A learning rate of 1e-3 fits the demonstrations a little better
#   but costs far more of this loss; the tiny profile uses 3e-4.
# * **Gold score by category**: SFT at or above base in nearly every category. A category where SFT falls below
#   base points at its demonstrations.

# %%
plots.training_curve(cfg.path / "sft_metrics.jsonl", ["sft/loss", "sft/eval_loss"], "SFT loss").show()
pol = summary["policies"]
plots.bars_with_ci(["base", "sft"], [pol["base"]["gold_overall"], pol["sft"]["gold_overall"]],
                   [pol["base"]["ci95"], pol["sft"]["ci95"]], "gold score on held-out prompts (95% CI)",
                   "gold overall").show()
d = summary["sft_minus_base"]
print(f"SFT - base: {d['mean']:+.3f}  95% CI [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]  (n = {summary['n_prompts']})")
print(f"pretraining validation loss: base {pol['base']['pretrain_val_loss']:.3f}, "
      f"SFT {pol['sft']['pretrain_val_loss']:.3f}")

# %%
cats = sorted(pol["sft"]["gold_by_category"])
plots.grouped_bars(cats, {name: [pol[name]["gold_by_category"][c] for c in cats] for name in ("base", "sft")},
                   "gold score by category", "gold overall").show()

# %% [markdown]
# ## Base and SFT side by side

# %%
samples = [json.loads(line) for line in (sft_dir / "samples.jsonl").read_text().splitlines()]
for s in samples[:6]:
    print(f"[{s['category']}] {s['prompt']}\n  base ({s['gold_base']:.2f}): {s['base']}\n"
          f"  sft  ({s['gold_sft']:.2f}): {s['sft']}\n")

# %% [markdown]
# **Next:** `04_rankings_and_reward_model.ipynb` samples K answers from this model per prompt, has the labelers
# rank them, and trains the reward model on the rankings.
