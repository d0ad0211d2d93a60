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
# # 00 · Overview: InstructGPT end to end
#
# *Follows: Ouyang et al. 2022, "Training language models to follow instructions with human feedback", §3 (Methods).*
#
# InstructGPT turns GPT-3 into an assistant in three steps (the paper's Figure 2):
#
# 1. **Supervised fine-tuning (SFT)** on demonstrations written by labelers.
# 2. **A reward model (RM)** trained on labelers' *rankings* of K model outputs per prompt (Eq. 1).
# 3. **PPO** against the RM with a per-token KL penalty to the SFT model, optionally mixed with the pretraining
#    loss — "PPO-ptx" (Eq. 2).
#
# None of GPT-3, its web corpus, the API's users or the 40 labelers are at hand on a laptop, so igpt builds a
# seeded **mini-world** that stands in for all of them, pretrains a tiny model on it, and runs the same pipeline.
# Switch the profile and the same code runs a real hub model with LoRA/QLoRA, or full-parameter on many GPUs.
#
# **In:** nothing. **Out:** `runs/<run>/config.yaml` (the resolved config every stage reads).

# %% tags=["parameters"]
PROFILE: str = ""  # config profile: tiny (CPU), lora (one GPU), full (many GPUs), paper; empty for tiny
SMOKE: bool = False  # True for test-sized world and models (seconds)
RUN_DIR: str = ""  # run folder, empty for the default of the profile (runs/tiny)
OVERRIDES: list = []  # extra overrides such as ppo.kl_coef=0.05
SEED: int = -1  # training seed; -1 keeps the profile's (0)

# %%
import igpt
from igpt.config import save_config
from igpt.notebooks import notebook_config
from igpt.plots import pipeline_map

cfg = notebook_config(PROFILE, smoke=SMOKE, run_dir=RUN_DIR, overrides=OVERRIDES,
                      seed=None if SEED < 0 else SEED)
print(f"igpt {igpt.__version__}, profile {cfg.profile!r}, run folder {cfg.run_dir}")

# %% [markdown]
# ## The pipeline and the run folder
#
# Every stage is one module with one entry point, and stages talk only through the run folder — the notebooks,
# the `igpt` command and scripts exported from the notebooks all call the same functions.
#
# | notebook | stage | call | reads | writes |
# |---|---|---|---|---|
# | 01 | world, data | `igpt.world.build`, `igpt.data.build` | config | `world/`, `data/` |
# | 02 | pretrain | `igpt.pretrain.train` | `data/pretrain` | `tokenizer/`, `base/` |
# | 03 | SFT | `igpt.sft.train` | `base/`, `data/sft` | `sft/` |
# | 04 | rankings + RM | `igpt.reward.train` | `sft/`, `data/rm_prompts` | `data/rankings`, `rm/` |
# | 05 | PPO, PPO-ptx | `igpt.ppo.train` | `sft/`, `rm/`, `data/ppo_prompts`, `data/pretrain` | `ppo/`, `ppo_ptx/` |
# | 06 | evaluation | `igpt.evaluate.run` | everything | `eval/` |
#
# Models are saved with `save_pretrained` (safetensors), datasets as Arrow + JSONL, metrics as `metrics.jsonl`.

# %%
pipeline_map().show()

# %% [markdown]
# ## The config
#
# One dataclass per stage (`igpt/config.py`), every field commented with its meaning and, where it comes from the
# paper, the source. Profiles are YAML files in `configs/`. A quick numeric check of what the profile asks for:
# the paper's per-token KL coefficient β and pretraining-mix coefficient γ (App. C.3).

# %%
save_config(cfg)  # what every later notebook reads back
print("world seed", cfg.world.seed, "| prompts", cfg.world.n_prompts, "| web documents", cfg.world.corpus_docs)
print("model", f"{cfg.pretrain.n_layer} layers x {cfg.pretrain.n_embd} wide, context {cfg.pretrain.context}")
print("PPO  beta (kl_coef) =", cfg.ppo.kl_coef, " gamma (ptx_coef) =", cfg.ppo.ptx_coef)
paper = igpt.load_config("paper")
assert paper.ppo.kl_coef == 0.02 and paper.ppo.ptx_coef == 27.8  # the paper's values, App. C.3

# %% [markdown]
# ## Scaling up: will PPO fit?
#
# PPO holds four models at once — the policy and the value model with their optimizer states, the frozen SFT
# reference and the frozen reward model — besides the activations of a training step and the rollouts' KV cache.
# The planner (`igpt.plan`, also `igpt plan` on the command line) estimates each per device from the model's
# config, the profile (full, LoRA, QLoRA; precision), the PPO batches and the topology (one GPU, DDP, FSDP,
# ZeRO-2/3), with the formulas in its docstring. Measured on this profile's tiny model on CPU, it is within a few
# percent of the memory a PPO-ptx step really allocates (tests/test_plan.py).

# %%
from igpt import plan

print(plan.plan(cfg).table())  # this profile's model, on one device

# %% [markdown]
# The same for real models, without downloading them: which sizes fit one GPU with the `lora` profile in 4 bits
# (QLoRA), and 8 × 80 GiB with the `full` profile. The training step's activations dominate once the weights are
# sharded: `ppo.mini_batch_size` is the first knob (docs/scaling.md).

# %%
qlora = igpt.load_config("lora", overrides=["sft.load_in_4bit=true"])
print(plan.fits_table(qlora, [("QLoRA, 1 x 24 GiB", "single", 1, 24), ("QLoRA, 1 x 80 GiB", "single", 1, 80)]))
print()
print(plan.fits_table(igpt.load_config("full"), [("8 x 80 GiB, ZeRO-2", "zero2", 8, 80),
                                                  ("8 x 80 GiB, ZeRO-3", "zero3", 8, 80),
                                                  ("8 x 80 GiB, FSDP", "fsdp", 8, 80)]))

# %% [markdown]
# ## Switching profiles and exporting to scripts
#
# * In a notebook: set `PROFILE = "lora"` in the first cell (or run `igpt notebooks --config lora`).
# * On the command line: `igpt pipeline --config tiny --run-dir runs/mine sft.epochs=4`.
# * Every notebook is paired with a percent-format script beside it (`notebooks/NN_name.py`, kept in step by
#   jupytext); `python notebooks/03_sft.py` runs it headless, or `jupytext --to py:percent NN_name.ipynb`
#   exports one you changed.
#
# **What to inspect:** the run folder now holds `config.yaml` (every later notebook reads it back) and `igpt.json`
# (the run-folder format); the pipeline map shows seven stages, each writing one entry of the run folder; the
# planner's estimate for the tiny profile's PPO-ptx peak is about 0.7 GiB, so it fits any laptop. **Next:**
# `01_data_construction.ipynb`.
