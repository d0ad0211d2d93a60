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
# # 01 · The mini-world and data construction
#
# *Follows: InstructGPT §3.2 "Dataset", §3.3 "Tasks", §3.4 "Human data collection" and App. A–B.*
#
# The paper's data came from three places: GPT-3's pretraining web, prompts that customers sent to the OpenAI API
# (plus prompts the labelers wrote to bootstrap), and ~40 contractors who wrote demonstrations and ranked outputs.
# igpt's **mini-world** stands in for all three, seeded and deterministic:
#
# * a **knowledge base** of invented people, towns, animals, foods and colours — and names that are *not* in it;
# * a **web** of short documents about them: encyclopedic facts, stories, reviews, arithmetic, forum threads in which
#   some popular answers are *misconceptions*, some rude language, and only rare instruction-following text;
# * **API users** who send prompts in the paper's use-case mix, with heavy users, near-duplicates and fake PII;
# * a **gold score** of any answer (helpful, honest, harmless, follows constraints) — the truth the labelers only
#   see noisily — and two **labeler panels** (training and held-out) who demonstrate, rank and rate.
#
# Then the data is built as the paper did: de-duplicate prompts sharing a long prefix, cap prompts per user (200),
# split train/validation/test **by user**, drop prompts with personal information, and cut the SFT, RM and PPO
# prompt sets in the paper's proportions (13k : 33k : 31k).
#
# **In:** the config. **Out:** `world/` and `data/` in the run folder.

# %% tags=["parameters"]
PROFILE: str = ""  # config profile, empty for tiny
SMOKE: bool = False  # True for test-sized world and models (seconds)
RUN_DIR: str = ""  # run folder, empty for the default of the profile (runs/tiny)
OVERRIDES: list = []  # extra overrides such as world.seed=1
SEED: int = -1  # training seed; -1 keeps the profile's (0)

# %%
import json
import random

import plotly.graph_objects as go

from igpt import data, plots, world
from igpt.config import save_config
from igpt.notebooks import notebook_config

cfg = notebook_config(PROFILE, smoke=SMOKE, run_dir=RUN_DIR, overrides=OVERRIDES,
                      seed=None if SEED < 0 else SEED)
save_config(cfg)
world_dir = world.build(cfg.world, cfg.path / "world")
w = world.load(world_dir)
wsum = json.loads((world_dir / "summary.json").read_text())
print(json.dumps({k: wsum[k] for k in ("kb", "corpus")}, indent=1))

# %% [markdown]
# ## The web: what the base model will read
#
# A few documents of each kind. Note the forum threads: for some facts the *false* popular answer appears more
# often than the truth, so a model that imitates the web repeats it — like GPT-3 on TruthfulQA.

# %%
train_docs, val_docs = w.corpus()
rng = random.Random(0)
for doc in rng.sample(train_docs, 8):
    print("·", doc[:240])

# %% [markdown]
# ## The gold score — a small numeric check
#
# `world.score(prompt, response)` returns the dimensions the paper's labelers were asked about (App. B): helpful,
# honest (the share of stated facts the knowledge base confirms; "i don't know" about unknown entities), harmless
# (no toxic words), follows constraints, whether the answer **attempts** the task at all, and an overall utility.
# A labeler's demonstration should score near 1; a rude or a wrong answer much lower.
#
# The paper's labelers counted "fails to follow the correct instruction / task" as the worst failure (Fig. 4's
# metadata), and in training comparisons they put helpfulness first: an answer "only slightly less truthful" but
# "much more helpful" wins (App. B). So an answer that does not take on the task — a birthday greeting to a
# request for a story, a story about someone else — keeps only a fifth of its honest, harmless and constraint
# credit, and one false detail in a long answer costs only its share of the claims. The labelers judge with the
# same gate, each with their own weights.

# %%
q = next(p for p in w.prompts() if p["category"] == "open qa")["prompt"]
demo = w.train_panel[0].demonstrate(q, random.Random(0))
print(q, "->", demo, "\n  ", w.score(q, demo))
rude = demo + " you idiot."
print(q, "->", rude, "\n  ", w.score(q, rude))
assert w.score(q, demo).overall > w.score(q, rude).overall and w.score(q, rude).toxic

# %%
story = next(p["prompt"] for p in w.prompts() if w.parse(p["prompt"]) and w.parse(p["prompt"]).kind == "story")
subject = w.parse(story).subject
other = next(x for x in w.kb.people if x != subject)
good = w.train_panel[0].demonstrate(story, random.Random(0))
one_slip = good.replace(w.kb.people[subject]["town"], w.kb.people[other]["town"], 1)  # one town wrong
greeting = f"happy birthday, {other}! i hope you have a lovely day."
for name, text in (("demonstration", good), ("one false detail", one_slip), ("attempts nothing", greeting)):
    sc = w.score(story, text)
    print(f"{name:17s} overall {sc.overall:.3f}  helpful {sc.helpful:.2f} honest {sc.honest:.2f} "
          f"attempted {sc.attempted}  | {text[:70]}")
assert w.score(story, one_slip).overall > w.score(story, greeting).overall

# %% [markdown]
# ## The prompts: the paper's use-case mix

# %%
mix = wsum["prompts"]["category_mix"]
paper = world.PAPER_MIX
cats = list(paper)
plots.grouped_bars(cats, {"mini-world": [100 * mix.get(c, 0) for c in cats],
                          "InstructGPT (Table 1)": [100 * paper[c] for c in cats]},
                   "prompt categories, % of the pool", "%").show()

# %% [markdown]
# ## Data construction

# %%
data_dir = data.build(cfg)
dsum = json.loads((data_dir / "summary.json").read_text())
print("prompts after each step:", dsum["counts"])
print("users per split:", dsum["users"])
print("sizes:", json.dumps(dsum["sizes"], indent=1))

# %% [markdown]
# **Per-user cap.** The paper kept at most 200 prompts per user so that a few heavy users do not dominate. The
# heaviest users before and after the cap:

# %%
top = dsum["cap"]["top_users"][:12]
fig = go.Figure()
fig.add_bar(x=[u["user_id"] for u in top], y=[u["before"] for u in top], name="before cap")
fig.add_bar(x=[u["user_id"] for u in top], y=[u["after"] for u in top], name="after cap")
fig.update_layout(barmode="group", title="prompts per user (heaviest users)", height=320)
fig.show()

# %% [markdown]
# **Prompt lengths**, and the **personal information** the filter removed (the paper filtered PII from API prompts):

# %%
pool = w.prompts()
fig = go.Figure(go.Histogram(x=[len(p["prompt"].split()) for p in pool], nbinsx=40))
fig.update_layout(title="prompt length (words)", height=300)
fig.show()
for ex in dsum["pii"]["examples"][:4]:
    print("filtered:", ex)
for ex in dsum["dedupe"]["examples"][:3]:
    print("duplicate prefix:", ex)

# %% [markdown]
# ## Demonstrations written by the training panel

# %%
sft_set = data.load(cfg, "sft")
for row in list(sft_set["train"])[:6]:
    print(f"[{row['category']}] ({row['labeler_id']}) {row['prompt']}\n    -> {row['completion']}")

# %% [markdown]
# ## The labelers agree about as often as the paper's did
#
# The paper reports that training labelers agreed with each other on 72.6 ± 1.5 % of pairwise comparisons, and
# held-out labelers on 77.3 ± 1.3 % (§3.4), measured on the model outputs they ranked. Each simulated labeler
# weighs the quality dimensions a little differently and ranks with noise (Plackett–Luce, `world.labeler_noise`),
# calibrated so that two training labelers agree on about 73 % of the pairs of ranked model outputs (notebook 04
# prints the run's own number, `agreement_train_panel` in `data/rankings/summary.json`). The check below pairs
# demonstrations with broken copies of them (wrong, rude, cut, a continuation): larger gaps than between two
# model outputs, so the labelers agree more often there.

# %%
print("agreement, training panel:", wsum["agreement"]["train_panel"],
      "| held-out panel:", wsum["agreement"]["heldout_panel"])
panel = w.train_panel + w.heldout_panel
ids, matrix = w.agreement_matrix(panel, n=100 if SMOKE else 300)
fig = go.Figure(go.Heatmap(z=matrix, x=ids, y=ids, zmin=0.5, zmax=1.0, colorscale="Blues",
                           text=[[f"{v:.2f}" for v in row] for row in matrix], texttemplate="%{text}"))
fig.update_layout(title="pairwise agreement between labelers", height=420)
fig.show()

# %% [markdown]
# ## What to inspect
#
# * The category mix matches the paper's within about 2 points per category.
# * Prompt lengths: most prompts a few words to a sentence or two (tens of characters), none over
#   `data.max_prompt_chars`; the heaviest users sit at the per-user cap (200 at tiny) and no higher.
# * The per-user cap bites only on the few heavy users; splits share no user (`users` above).
# * Demonstrations look like good answers; on demonstration-vs-broken pairs agreement sits in 0.78–0.92 for both
#   panels (above the paper's 73 %, which notebook 04 checks on model outputs).
#
# **Bring your own data:** set `data.prompts_file`, `data.demonstrations_file`, `data.rankings_file` or
# `data.pretrain_file` (see the README's data section and `data/samples/`).
#
# **Next:** `02_pretrain_base.ipynb` pretrains the GPT-3 stand-in on this web.
