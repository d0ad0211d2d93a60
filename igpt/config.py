"""Configuration: one flat dataclass per stage, gathered in `RunConfig`, loaded from YAML profiles.

A profile is a YAML file in `configs/` (`tiny`, `lora`, `full`, `paper`, ...). A profile may name another
with `base: <name>`; its keys are then laid over that one. `smoke: true` lays `configs/smoke.yaml` (tiny
sizes for tests) on top of whatever profile was chosen. Overrides come last:

    cfg = load_config("tiny", smoke=True, ppo={"kl_coef": 0.05}, seed=1)
    cfg = load_config("tiny", overrides=["ppo.kl_coef=0.05", "seed=1"])   # what the CLI passes

Every key is checked: an unknown key is an error naming it and the closest valid names, a value of the
wrong type is an error naming the field and the type it wants. Paper values cite InstructGPT (Ouyang et
al. 2022): "App. C" is its appendix C (hyperparameters), "§3.x" its sections.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from igpt.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class WorldConfig:
    """The mini-world: the stand-in for GPT-3's web, the API users and the labelers."""

    seed: int = 0  # everything in the world derives from this; same seed -> byte-identical files
    n_people: int = 60  # invented people in the knowledge base
    n_towns: int = 16  # invented towns
    n_unknown: int = 30  # entity names NOT in the KB: questions about them should get "i don't know"
    corpus_docs: int = 40000  # documents in the pretraining web (stories, facts, forums, reviews, ...)
    val_fraction: float = 0.05  # share of web documents held out: the pretraining validation split (alignment tax)
    misconception_share: float = 0.25  # share of facts that also have a popular false version on the forums
    misconception_weight: float = 2.0  # how many times more often the false version appears than the truth
    toxic_share: float = 0.06  # share of web documents with words from the toxic lexicon
    instruction_share: float = 0.02  # share of web documents that follow an instruction (rare, as on the web)
    n_users: int = 400  # simulated API customers
    heavy_user_share: float = 0.05  # share of users who send many prompts (the per-user cap bites on them)
    n_prompts: int = 6000  # prompts in the pool before filtering (API + labeler-written)
    labeler_prompt_share: float = 0.15  # share written by labelers (plain, few-shot, user-based; paper §3.2)
    near_duplicate_share: float = 0.08  # share of API prompts that repeat another's long prefix
    pii_share: float = 0.03  # share of API prompts carrying fake e-mails or phone numbers
    n_train_labelers: int = 8  # the training panel (the paper hired ~40)
    n_heldout_labelers: int = 4  # the held-out panel used only for evaluation (paper §3.4)
    labeler_noise: float = 0.06  # Plackett-Luce temperature on utility; two training labelers then agree on ~75% of the pairs of ranked model outputs (paper: 72.6 ± 1.5% among training labelers, 77.3 ± 1.3% among held-out ones, §3.4; docs/experiments/2026-12-06-mini-world.md)
    labeler_tie_margin: float = 0.0  # a labeler gives a completion the rank of the one before it in its sampled order when its utility (its own) is within this of the first of that group: a tie, no comparison for the RM (igpt; 0 = never. At tiny, 0.01 ties about a quarter of the ranked pairs; gate 1's agreement then needs labeler_noise ~0.12 (78 % with run seed 0, 77-82 % with others), which left the seed-0 RM's best-of-16 gain smaller: off; docs/experiments/2026-12-06-mini-world.md)


@dataclass
class DataConfig:
    """Data construction from the prompt pool (paper §3.2 and App. A)."""

    dedupe_prefix_chars: int = 40  # prompts sharing a common prefix this long count as duplicates (paper: "long common prefix")
    max_prompts_per_user: int = 200  # cap per user_id (paper §3.2: 200)
    val_user_share: float = 0.1  # share of users whose prompts form the validation split
    test_user_share: float = 0.1  # share of users whose prompts form the test split (held-out users)
    max_prompt_chars: int = 400  # longer prompts are dropped
    max_response_chars: int = 400  # longer demonstrations are dropped
    split_ratio: list[int] = field(default_factory=lambda: [13, 33, 31])  # SFT : RM : PPO prompts (paper Table 6: 13k, 33k, 31k)
    filter_pii: bool = True  # drop prompts with e-mails or phone numbers (paper §3.2)
    prompts_file: str | None = None  # your prompt pool (file or hub name) instead of the world's; same dedupe/cap/splits (igpt)
    demonstrations_file: str | None = None  # your demonstrations instead of the training panel's (igpt)
    rankings_file: str | None = None  # your rankings (HH-RLHF, summarize-from-feedback, TRL, canonical) for the RM stage (igpt)
    pretrain_file: str | None = None  # your pretraining text (.txt or {text} rows) instead of the world's web (igpt)
    allow_hub: bool = False  # let the *_file fields name Hugging Face hub datasets (downloads); off: local files only (igpt)
    hub_split: str = "train"  # split read from a hub dataset or a saved dataset folder (igpt)


@dataclass
class PretrainConfig:
    """Tokenizer and the GPT-3 stand-in, pretrained from scratch on the world's web."""

    base_model: str | None = None  # hub id or local path of a pretrained causal LM; if set, pretraining is skipped
    shipped: str | None = None  # a base kept in the repository (made by `igpt ship-base`): copied in instead of pretraining when it was trained on this run's web, size and seed; else pretraining runs (igpt)
    vocab_size: int = 2048  # byte-level BPE vocabulary (GPT-3 used a 50k BPE)
    n_layer: int = 4  # transformer blocks (Llama-style config)
    n_embd: int = 192  # hidden size
    n_head: int = 4  # attention heads
    context: int = 256  # maximum sequence length in tokens
    steps: int = 500  # optimizer steps (~4 min on 2 cores at the tiny size)
    batch_size: int = 16  # sequences per step, all processes together
    lr: float = 2e-3  # peak learning rate, cosine decay
    warmup_steps: int = 50  # linear warm-up before the cosine
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # Adam betas (paper App. C: beta2 = 0.95)
    weight_decay: float = 0.1  # AdamW weight decay
    dropout: float = 0.0  # no dropout while pretraining


@dataclass
class SFTConfig:
    """Supervised fine-tuning on labeler demonstrations (paper §3.5 and App. C.1)."""

    epochs: int = 8  # passes over the demonstrations (paper: 16)
    lr: float = 3e-4  # peak learning rate (1e-3 fits the demonstrations better but forgets far more of the web)
    lr_min_ratio: float = 0.1  # cosine decay to 10% of the peak (paper App. C.1)
    warmup_steps: int = 0  # no warm-up (paper App. C.1)
    batch_size: int = 16  # demonstrations per step, all processes together (paper: 32)
    dropout: float = 0.2  # residual dropout (paper App. C.1)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # Adam betas (paper App. C: beta2 = 0.95)
    max_length: int = 256  # prompt + completion tokens
    use_lora: bool = False  # train LoRA adapters instead of all weights
    lora_r: int = 16  # LoRA rank
    lora_alpha: int = 32  # LoRA scaling numerator
    lora_dropout: float = 0.05  # dropout on the LoRA branch
    load_in_4bit: bool = False  # QLoRA: load the base in 4-bit with bitsandbytes (CUDA only)


@dataclass
class RewardConfig:
    """Rankings and the reward model (paper §3.5 "Reward modeling" and App. C.2)."""

    k: int = 4  # completions ranked per prompt (paper: 4 to 9)
    base_candidates: int = 0  # of the K, how many the pretrained base model samples instead of SFT: the RM then also sees continuations, toxic words, rambling (igpt; the paper ranked outputs of several models)
    low_temp_candidates: int = 0  # of the K, how many SFT samples at reward.low_temperature, nearer its greedy answer (igpt; several sources per prompt as in §3.1)
    swap_candidates: int = 0  # of the K, how many are SFT's answer to a sibling prompt (the same prompt about another person, town or animal): off topic here, so the RM must read the prompt to rank it (igpt)
    repeat_candidates: int = 0  # of the K, how many are an SFT sample (at reward.temperature) made repetitive, the subject's name over and over or a sentence said again (rankings.repetitive): what a policy over-optimised against the RM drifts to and SFT rarely writes, so the RM sees it ranked (igpt; the paper's comparisons came partly from PPO policies, §3.1)
    policy_candidates: int = 0  # of the K, how many are sampled at reward.temperature from the policy in reward.candidate_policy, a PPO-ptx (or PPO) folder of an earlier round: the answers a policy optimised against an earlier RM writes, ranked so that the next RM sees where that policy went (the paper: some comparisons came from its PPO policies, §3.1; Stiennon et al. 2020 ranked the current policy's outputs); 0 = off (igpt)
    candidate_policy: str = ""  # the model folder that reward.policy_candidates sample, e.g. runs/tiny/ppo_ptx (a path, or relative to run_dir); it must share SFT's tokenizer (igpt)
    mirror_swaps: int = 0  # for each training prompt whose swap candidate answers a sibling prompt, a second ranking under that sibling prompt of the swap candidate and this many of the prompt's own best-ranked completions, by the same labeler (needs reward.swap_candidates >= 1): the same texts change order when only the prompt changes, which nothing but reading the prompt can fit; 0 = off (igpt; docs/experiments/2026-12-06-mini-world.md, seventh session)
    contrast_epochs: int = 0  # passes over the prompt-contrast rankings alone (the pairs of texts a mirror ranking and its prompt's own ranking put in opposite orders: only reading the prompt fits both) before the RM trains on all the rankings from the weights they leave; rankings without mirrors (reward.mirror_swaps, world data only) get a note and no phase; 0 = off (igpt; docs/experiments/2026-12-06-mini-world.md, eighth session)
    scale_samples: int = 0  # after training, SFT samples (one at reward.temperature for each of the first N demonstration prompts) whose RM scores' standard deviation becomes the RM's unit: the published RM returns (raw - shift) / that std, so SFT's samples spread by 1 whatever the RM and ppo.kl_coef keeps its meaning when the RM changes; 0 = off, the raw scale (Ziegler et al. 2019, lm-human-preferences' reward gain; the paper only shifts the bias)
    contrast_batch_size: int = 0  # rankings per step in the prompt-contrast phase (each has two texts); 0 = reward.batch_size (igpt)
    temperature: float = 1.0  # sampling temperature for the K completions
    low_temperature: float = 0.7  # sampling temperature of the reward.low_temp_candidates
    max_new_tokens: int = 48  # length bound of each completion
    sample_batch_size: int = 192  # sequences per generate() call when sampling the K completions: prompts are taken in chunks of sample_batch_size // k, and each candidate source samples a chunk in one call (igpt: on 2 cores, calls of 10 sequences sampled ~30 a second, of 30 to 192 51-58)
    mode: str = "kwise"  # "kwise": all C(K,2) pairs of a prompt in one batch element (paper); "pairwise": independent pairs
    epochs: int = 1  # the paper trains one epoch; more overfits (App. C.2)
    lr: float = 2e-4  # peak learning rate, cosine decay to 10% (App. C.2: 9e-6 at 6B; tiny sweep 1e-4..2e-3: best by ~1 point)
    batch_size: int = 4  # prompts (each with K completions) per step, all processes together (paper: 64; tiny: 4 a little ahead of 2 and 8)
    max_length: int = 256  # prompt + completion tokens
    warmup_steps: int = 0  # linear warm-up before the cosine (igpt; 10% warm-up gained nothing at tiny)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # Adam betas (paper App. C: beta2 = 0.95)
    use_lora: bool = False  # train LoRA adapters (shaped by sft.lora_r, lora_alpha, lora_dropout) and the score head, merged into the saved RM (igpt)
    max_train_prompts: int = 0  # train on the first N ranked prompts only; 0 = all (notebook 04 gives its pairwise run 1/(K-1) of them: about the K-wise run's forward passes) (igpt)
    restarts: int = 1  # train this many RMs (seeds seed, seed + 1, ...) for reward.restart_steps steps each and finish only the one with the best validation accuracy against the training panel; 1 = off (igpt: at the tiny size and without reward.contrast_epochs, the training trajectory decides whether the RM learns to read the prompt)
    restart_steps: int = 180  # steps each restart trains before the choice, on the whole run's learning-rate schedule (igpt; on world 0 at 90 of 728 steps the choice missed the start that learns to read the prompt, at 180 it found it by 0.4 points)


@dataclass
class PPOConfig:
    """PPO and PPO-ptx (paper §3.5 Eq. 2 and App. C.3)."""

    ptx_coef: float = 1.0  # gamma in Eq. 2 for the PPO-ptx run (the plain PPO run uses 0); paper App. C.3: 27.8 for GPT-3, tiny value tuned in notebook 05
    ptx_ratio: int = 1  # pretraining examples per RL episode (paper App. C.3: 8, see paper.yaml); tiny: 8 made the update 10x slower for the same pretraining loss (0.746 vs 0.767)
    ptx_block: int = 64  # tokens per pretraining example in the ptx term (the paper's were GPT-3 contexts)
    kl_coef: float = 0.02  # beta in Eq. 2: per-token KL penalty against the SFT model (paper App. C.3: 0.02)
    kl_target: float = 0.0  # adaptive beta: after each iteration beta rises when the rollouts' mean sequence KL from SFT (nats) is above this target and falls back when below, never under kl_coef (Ziegler et al. 2019 §2.2 with a floor, losses.adaptive_kl_coef: a short run starts at KL 0, and unfloored the controller would drive beta toward 0 before the KL needs it); 0 = off, beta stays kl_coef (the paper's fixed beta)
    kl_horizon: int = 10000  # episodes over which the adaptive beta can change by a factor of about e^0.2 at most (Ziegler et al. 2019: 10 000; each iteration moves it by at most 0.2 * batch_size / kl_horizon); only with kl_target > 0
    iterations: int = 40  # PPO iterations (rollout + update)
    batch_size: int = 64  # episodes per iteration (paper: 512)
    mini_batch_size: int = 16  # episodes per gradient step (paper: 64)
    ppo_epochs: int = 1  # passes over each batch (paper: 1)
    lr: float = 1e-4  # policy learning rate after warm-up
    value_lr: float = 1e-4  # value model learning rate (the paper gives it its own)
    warmup_iters: int = 10  # LR warm-up from lr/10 over the first iterations, then constant (paper App. C.3)
    critic_warmup: int = 0  # iterations at the start in which only the value model learns (its loss alone, no policy or ptx step), so that the first policy updates get advantages from a value model fitted to this policy's returns; the policy's LR warm-up starts after them (OpenRLHF's freezing_actor_steps; igpt, 0 = off)
    gamma: float = 1.0  # GAE discount (paper: 1)
    lam: float = 0.95  # GAE lambda (paper: 0.95)
    cliprange: float = 0.2  # PPO clip epsilon (paper: 0.2)
    cliprange_value: float = 0.2  # value-loss clip
    vf_coef: float = 0.5  # value-loss weight
    temperature: float = 1.0  # rollout sampling temperature (paper: 1)
    max_new_tokens: int = 48  # rollout response length bound
    missing_eos_penalty: float = 1.0  # subtracted from the score of a response that never emits EOS
    ema_decay: float = 0.992  # EMA of the policy weights, saved beside the raw policy (paper App. C.3)
    reward_source: str = "rm"  # "rm": the trained reward model; "gold": the world's gold score (debugging)
    sample_every: int = 5  # log a few (prompt, response, score, per-token KL) samples every N iterations
    save_every: int = 10  # checkpoint (policy, value, EMA, optimizer, RNG) every N iterations
    snapshot_every: int = 0  # keep the policy's trainable weights every N iterations in <out>/snapshots/ for the over-optimisation curves (Gao et al. 2022); 0 = off


@dataclass
class EvalConfig:
    """Evaluation (paper §4)."""

    n_prompts: int = 200  # held-out test prompts per policy
    best_of_n: int = 16  # n for the best-of-n baseline
    bootstrap: int = 1000  # bootstrap resamples for the 95% intervals
    max_new_tokens: int = 48  # response length bound
    temperature: float = 0.0  # 0 = greedy decoding for evaluation
    sampled: int = 4  # temperature-1 samples per held-out prompt for the "sampled gold" score: the expectation
    #                   E_{y~pi}[gold] over the distribution PPO optimises (Eq. 2 is an expectation over y ~ pi_RL),
    #                   beside the greedy score; 0 skips it
    n_truthful: int = 100  # TruthfulQA-style questions per kind (known fact, misconception, unknown name)
    n_toxic: int = 100  # rudeness-inviting prompts, asked with and without the "respectful" instruction (§4.2)
    n_closed: int = 150  # closed-domain prompts (closed QA, extraction, summary) for the closed-domain hallucination
    #                      rate (Figure 4); the held-out prompts hold only ~9 % of them
    n_nlp: int = 100  # items per few-shot "public NLP" task (fact cloze, sentiment, arithmetic) for the alignment tax
    overopt_prompts: int = 32  # prompts for the over-optimisation curves (Gao et al. 2022), sampled at temperature 1
    overopt_max_n: int = 64  # best-of-n curve up to this n (Gao et al. 2022 go to n = 60 000; 64 suffices to bend)
    batch_size: int = 32  # sequences per generate() call wherever a stage samples or answers to measure: SFT's and PPO's comparisons, the RM's scale samples, the probe, the evaluation (not the rankings: reward.sample_batch_size; not the rollouts). On a CPU a call's cost is mostly per step, so larger calls sample more per second: 11.6 ms a sequence in calls of 128 against 14.8 ms in calls of 32 on 2 cores (docs/experiments/2026-12-06-mini-world.md, fourteenth session); on a GPU, memory bounds it
    whole_panel: bool = False  # every labeler of a panel judges each comparison against SFT and the win rate counts the share of their judgments (per prompt, then averaged; the interval resamples prompts); False = one labeler drawn per prompt, the paper's protocol (each comparison judged once). igpt: the tiny panels have 4 and 8 labelers, and with one per prompt the draw alone moved a policy's win rate by 3.5 points (docs/experiments/2026-12-06-mini-world.md, tenth session)


@dataclass
class RunConfig:
    """Everything one run needs. Stages read their section; the resolved config lands in run_dir/config.yaml."""

    profile: str = "tiny"  # the profile this was loaded from (informative)
    run_dir: str = "runs/tiny"  # the run folder every stage reads and writes
    seed: int = 0  # seed for training stages (the world has its own)
    device: str = "auto"  # "auto", "cpu" or "cuda"
    precision: str = "fp32"  # "fp32", "bf16" or "fp16" for training (bf16 needs a GPU that has it)
    world: WorldConfig = field(default_factory=WorldConfig)
    data: DataConfig = field(default_factory=DataConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def path(self) -> Path:
        return Path(self.run_dir)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Short hash of the resolved config, recorded beside results."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


SECTIONS = {"world": WorldConfig, "data": DataConfig, "pretrain": PretrainConfig, "sft": SFTConfig,
            "reward": RewardConfig, "ppo": PPOConfig, "eval": EvalConfig}


def profiles() -> list[str]:
    """Names of the shipped profiles."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _read_profile(name: str, seen: tuple[str, ...] = ()) -> dict:
    path = Path(name) if name.endswith((".yaml", ".yml")) else CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        hint = difflib.get_close_matches(name, profiles(), n=3)
        raise ConfigError(f"no profile {name!r} (looked for {path}); shipped profiles: {', '.join(profiles())}"
                          + (f"; did you mean {', '.join(hint)}?" if hint else ""))
    data = _read_yaml(path, "a profile")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: config key 'base' names the profile this one starts from; got {base!r}")
    if base in seen:
        raise ConfigError(f"{path}: profiles inherit in a loop: {' -> '.join(seen + (base,))}")
    return _merge(_read_profile(base, seen + (name,)), data)


def _read_yaml(path: Path, what: str) -> dict:
    """A YAML mapping from path, or a ConfigError naming the file (safe_load: YAML tags never build objects)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read: {e.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} must be a mapping of keys to values, got {type(data).__name__}")
    return data


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _unknown(key: str, valid: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key.split(".")[-1], valid, n=3, cutoff=0.5)
    msg = f"unknown config key {key!r}{where}"
    msg += f"; did you mean {', '.join(repr(c) for c in close)}?" if close else f"; valid keys: {', '.join(valid)}"
    return ConfigError(msg)


def _check_type(key: str, value, typ):
    """Return value converted to typ (int -> float allowed), or raise a ConfigError naming key and type."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(typ)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(key, value, a)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"config key {key!r} wants {_type_name(typ)}, got {value!r} ({type(value).__name__})")
    if origin is list:
        (item,) = typing.get_args(typ)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} wants {_type_name(typ)}, got {value!r} ({type(value).__name__})")
        return [_check_type(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if typ is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:  # YAML 1.1 reads "3e-4" (no dot) as a string; people write it that way
            number = float(value)
        except (ValueError, OverflowError):  # OverflowError: an int too large for a float
            number = None
        if number is not None and not math.isfinite(number):  # .nan and .inf are YAML floats, never a setting
            raise ConfigError(f"config key {key!r} wants a finite number, got {value!r}")
        if number is not None:
            return number
    if typ is bool and isinstance(value, bool):
        return value
    if typ in (int, float, str) and isinstance(value, typ) and not isinstance(value, bool):
        return value
    raise ConfigError(f"config key {key!r} wants {_type_name(typ)}, got {value!r} ({type(value).__name__})")


def _type_name(typ) -> str:
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(typ))
    if typing.get_origin(typ) is list:
        return f"a list of {_type_name(typing.get_args(typ)[0])}"
    return {type(None): "null", int: "an int", float: "a float", bool: "true/false", str: "a string"}.get(typ, str(typ))


def _build(cls, values: dict, prefix: str, where: str):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if k not in names:
            raise _unknown(key, [f"{prefix}{n}" for n in names], where)
        if k in SECTIONS and cls is RunConfig:
            if not isinstance(v, dict):
                raise ConfigError(f"config key {key!r} is a section; give it a mapping of keys, got {v!r}{where}")
            kwargs[k] = _build(SECTIONS[k], v, f"{k}.", where)
        else:
            try:
                kwargs[k] = _check_type(key, v, hints[k])
            except ConfigError as e:
                raise ConfigError(f"{e}{where}") from None
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], object]:
    """'ppo.kl_coef=0.05' -> (['ppo', 'kl_coef'], 0.05). The value is read as YAML (numbers, true/false, null, lists)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. ppo.kl_coef=0.05)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has no key before '='")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def load_config(profile: str = "tiny", overrides: list[str] | tuple[str, ...] = (), smoke: bool = False,
                **sections) -> RunConfig:
    """Load a profile, lay the smoke sizes and the overrides over it, and check every key and type.

    `overrides` are 'dotted.key=value' strings (the CLI's); keyword arguments are top-level fields
    (`seed=1`) or sections given as dicts (`ppo={"kl_coef": 0.05}`).
    """
    data = _read_profile(profile)
    if smoke:
        data = _merge(data, _read_profile("smoke"))
    data = _merge(data, sections)
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            if part not in SECTIONS or node is not data:
                raise _unknown(".".join(path), _all_keys(), "")
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config key {part!r} is a section; give it a mapping of keys, got {node!r} "
                                  f"(profile {profile!r})")
        node[path[-1]] = value
    data.setdefault("profile", Path(profile).stem)
    return _build(RunConfig, data, "", f" (profile {profile!r})")


def _all_keys() -> list[str]:
    keys = [f.name for f in dataclasses.fields(RunConfig) if f.name not in SECTIONS]
    for name, cls in SECTIONS.items():
        keys += [f"{name}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


# The layout of a run folder (which files each stage writes, their schemas). Bumped when a change makes an older
# folder unreadable or misleading; check_run_dir refuses a folder of another format instead of mixing the two.
RUN_FORMAT = 1


def save_config(cfg: RunConfig, path: str | Path | None = None) -> Path:
    """Write the resolved config as YAML (atomically) into the run folder, or to `path`; in the run folder also
    igpt.json, the run-folder format and igpt version that made it."""
    import json

    from igpt import __version__
    from igpt.io import atomic_write_text

    if path is None and not (cfg.path / "igpt.json").is_file():
        atomic_write_text(cfg.path / "igpt.json", json.dumps({"run_format": RUN_FORMAT, "igpt": __version__}) + "\n")
    path = Path(path) if path else cfg.path / "config.yaml"
    return atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def check_run_format(run_dir: str | Path) -> None:
    """Refuse a run folder written in another run-folder format (igpt.json), naming both and what to do."""
    import json

    from igpt import __version__

    path = Path(run_dir) / "igpt.json"
    if not path.is_file():
        return  # a new folder, or one from before igpt.json existed (format 1)
    try:
        made = json.loads(path.read_text(encoding="utf-8"))
        fmt = made["run_format"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path} is not igpt's run-folder stamp (expected {{run_format, igpt}}); "
                          f"use a new --run-dir or delete {run_dir}") from None
    if fmt != RUN_FORMAT:
        raise ConfigError(f"{run_dir} was written by igpt {made.get('igpt', '?')} in run-folder format {fmt}; this "
                          f"igpt ({__version__}) reads format {RUN_FORMAT}. Use a new --run-dir (or the igpt "
                          f"version that made it), rather than mixing the two.")


def config_from_run(run_dir: str | Path) -> RunConfig:
    """Read back the resolved config a run folder was made with."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{path} not found: is {run_dir} a run folder? Run `igpt world --run-dir {run_dir}` first.")
    return _build(RunConfig, _read_yaml(path, "a run's config.yaml"), "", f" (in {path})")


def field_docs(cls) -> dict[str, str]:
    """The comment after each field in this file: the documentation the CLI prints."""
    src = Path(__file__).read_text().splitlines()
    docs, inside = {}, False
    for line in src:
        if line.startswith(f"class {cls.__name__}"):
            inside = True
            continue
        if inside and line.startswith("class "):
            break
        if inside and ":" in line and "#" in line and line.startswith("    ") and not line.startswith("     "):
            name = line.strip().split(":")[0]
            docs[name] = line.split("#", 1)[1].strip()
    return docs


def env_device(cfg: RunConfig) -> str:
    """Resolve cfg.device ('auto' picks CUDA when present)."""
    if cfg.device != "auto":
        return cfg.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_run_dir(cfg: RunConfig) -> None:
    """Refuse to mix runs: a run folder of another run-folder format, or whose world was built from another world
    config, is not reused."""
    check_run_format(cfg.path)
    path = cfg.path / "config.yaml"
    if not path.is_file() or not (cfg.path / "world").exists():
        return
    try:
        old = config_from_run(cfg.path)
    except ConfigError as e:
        raise ConfigError(f"{path} was written by an incompatible igpt config ({e}); "
                          f"use a new --run-dir or delete {cfg.path}") from None
    if old.world != cfg.world:
        diff = [k for k in old.world.__dataclass_fields__ if getattr(old.world, k) != getattr(cfg.world, k)]
        raise ConfigError(f"{cfg.path} holds a world built with other settings (world.{', world.'.join(diff)} differ); "
                          f"every later stage depends on it. Use a new --run-dir, or delete {cfg.path} to rebuild.")
