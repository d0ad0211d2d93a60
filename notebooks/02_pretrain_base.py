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
# # 02 · The base model: a GPT-3 stand-in pretrained on the mini-world's web
#
# *Follows: InstructGPT §3.5 ("we start from GPT-3") and Brown et al. 2020 (GPT-3), §2.*
#
# InstructGPT starts from GPT-3: a language model trained to continue web text, not to follow instructions.
# Here a byte-level BPE tokenizer and a small Llama-style transformer are trained from scratch on the world's web
# with the Hugging Face `Trainer`: next-token cross-entropy, Adam with β₂ = 0.95, cosine schedule.
#
# **In:** `data/pretrain` (from notebook 01). **Out:** `tokenizer/`, `base/` (model + `summary.json`),
# `base_metrics.jsonl`. With `pretrain.base_model` set (the `lora` and `full` profiles), this stage is skipped and
# that pretrained model is the base.
#
# **Trained once, like GPT-3.** The paper did not pretrain GPT-3 for each experiment, and neither does the tiny
# profile: its base (1500 steps, about 6M tokens, 17 minutes on 2 CPU cores) is kept in the repository under
# `data/base/tiny`, with a stamp of the web, size and seed it was trained on (`pretrain.shipped`). On world seed 0
# at the tiny size this stage copies it in, training curve included; any other world, size or seed pretrains here
# as configured. To train it again and keep the result:
#
#     igpt pretrain --config tiny --run-dir runs/base pretrain.shipped=null
#     igpt ship-base --config tiny --run-dir runs/base --to data/base/tiny
#
# Why 1500 steps: after 500 (the earlier default) SFT named the prompt's subject in only 23 % of its samples, the
# reward model trained on its rankings could not tell one prompt from another, and no PPO run beat SFT
# (`docs/experiments/2026-12-06-mini-world.md`).

# %% tags=["parameters"]
PROFILE: str = ""  # config profile, empty for tiny
SMOKE: bool = False  # True for test-sized world and models (seconds)
RUN_DIR: str = ""  # run folder, empty for the default of the profile (runs/tiny)
OVERRIDES: list = []  # extra overrides such as pretrain.steps=200
SEED: int = -1  # training seed; -1 keeps the profile's (0)

# %%
import json
import math

import torch

from igpt import data, hf, plots, pretrain, world
from igpt.generation import generate
from igpt.io import read_jsonl
from igpt.notebooks import notebook_config
from igpt.prompting import format_prompt

cfg = notebook_config(PROFILE, smoke=SMOKE, run_dir=RUN_DIR, overrides=OVERRIDES,
                      seed=None if SEED < 0 else SEED)
corpus = data.load(cfg, "pretrain")
print(corpus)
for text in corpus["train"]["text"][:4]:
    print("·", text)

# %% [markdown]
# ## The objective
#
# Language modelling: minimise L = −(1/T) Σₜ log p(xₜ | x₍<ₜ₎). A model that knows nothing predicts uniformly over
# the vocabulary, so its loss is log V; the first logged loss should start near that value and fall well below it.

# %%
V = cfg.pretrain.vocab_size
print(f"uniform loss log V = log {V} = {math.log(V):.2f} nats")
logits = torch.zeros(1, 3, V)  # a "model" with no opinion
uniform = torch.nn.functional.cross_entropy(logits.view(-1, V), torch.tensor([1, 2, 3]))
assert abs(uniform.item() - math.log(V)) < 1e-5

# %% [markdown]
# ## Train

# %%
base_dir = pretrain.train(cfg)
tok = pretrain.load_tokenizer(pretrain.tokenizer_path(cfg))
print("vocabulary:", len(tok), "tokens; a sample:", sorted(tok.get_vocab(), key=len)[-20:])
example = corpus["validation"]["text"][0]
print("tokenised:", [tok.decode([t]) for t in tok(example)["input_ids"][:24]])

# %% [markdown]
# ## What to inspect
#
# * **The training curve** starts near log V and falls steadily (the summary below gives where it ends). A curve
#   that rises or jumps means the learning rate is too high.
# * **Validation loss** on the held-out web split should sit close to the last logged training loss (a gap of more
#   than ~0.3 nats would mean overfitting). It is the pretraining loss whose rise after RLHF the paper calls the
#   "alignment tax" (notebook 06).

# %%
if not cfg.pretrain.base_model:
    plots.training_curve(cfg.path / "base_metrics.jsonl", ["pretrain/loss"], "pretraining loss").show()
    summary = json.loads((base_dir / "summary.json").read_text())
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()})
    last = [r["pretrain/loss"] for r in read_jsonl(cfg.path / "base_metrics.jsonl") if "pretrain/loss" in r][-1]
    print(f"last logged training loss {last:.3f}, validation loss {summary['val_loss']:.3f}")

# %% [markdown]
# ## The base model continues text; it does not follow instructions
#
# Give it instructions in the assistant format. Like GPT-3, it has seen that format only rarely on its web, so it
# tends to continue with more web-like text (another question, a story, a list) rather than answer — the starting
# point the paper describes. The world's gold score (notebook 01) rates each answer.

# %%
w = world.load(cfg.path / "world")
prompts = [r["prompt"] for r in list(data.load(cfg, "eval_prompts")["test"])[:8]]
model = hf.load_causal_lm(pretrain.base_path(cfg))
answers = generate(model, tok, prompts, max_new_tokens=cfg.eval.max_new_tokens, temperature=0.0)
for p, a in zip(prompts, answers):
    print(format_prompt(p), a, f"\n   gold overall = {w.score(p, a).overall:.2f}\n")

# %% [markdown]
# **Next:** `03_sft.ipynb` fine-tunes this model on the labelers' demonstrations.
