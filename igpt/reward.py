"""Stage 4b: the reward model (InstructGPT §3.5 "Reward modeling", App. C.2).

    igpt.reward.train(cfg) -> runs/<run>/rm/     (collects data/rankings first if it is missing)

The RM is the SFT model with the unembedding layer removed and a scalar head on the last token: transformers'
`AutoModelForSequenceClassification` with num_labels=1, its transformer weights loaded from sft/ and its `score`
head new. It reads prompt + " " + completion + EOS and returns one number, the reward r_θ(x, y).

K-wise training (the paper): one batch element is one prompt with all its K completions. Each completion is
encoded once, and Eq. 1 is applied to the C(K,2) pairs inside the prompt,

    loss(θ) = −1/C(K,2) · E_{(x, y_w, y_l)}[ log σ(r_θ(x, y_w) − r_θ(x, y_l)) ]      (losses.kwise_ranking_loss)

so a prompt costs K forward passes instead of 2·C(K,2), and its strongly correlated comparisons stay in one
gradient step instead of being shuffled into separate examples, which the paper found overfits within one epoch.
`reward.mode: pairwise` trains on the same rankings cut into independent shuffled (chosen, rejected) pairs, as TRL,
OpenRLHF and DeepSpeed-Chat do, so the notebook can compare the two on the same data (forward passes, time, accuracy).

A prompt-contrast phase (`reward.contrast_epochs`, off by default; on in the tiny profile) comes first when set:
the new RM trains alone on the pairs of texts that a mirror ranking (reward.mirror_swaps) and its prompt's own
ranking put in opposite orders (rankings.contrast_rankings), then on all the rankings from there. Only the prompt
separates those pairs, so the RM learns to read it before the rest of the rankings offer easier features of the
completion alone (docs/experiments/2026-12-06-mini-world.md, eighth session).

After training the score is shifted so that the labelers' demonstrations (data/sft train) score 0 on average, as
the paper does before RL. With reward.scale_samples the scores are also divided by their standard deviation on
SFT's samples, so that the policy PPO starts from sees rewards that spread by 1 whatever RM was trained, and β
(ppo.kl_coef) weighs the KL against the same unit (lm-human-preferences' reward gain; Ziegler et al. 2019). The
shift and the scale are plain numbers in the saved config (`igpt_reward_shift`, `igpt_reward_scale`) and become
the score head's bias and weight in `load_reward_model`. Transformers' Llama head has no bias, so the checkpoint
keeps the raw head: a plain `AutoModelForSequenceClassification.from_pretrained` gives raw scores; subtract the
shift and divide by the scale.

runs/<run>/rm/summary.json:
    mode, epochs, steps, k, batch_size, lr, train_prompts, train_comparisons, validation_prompts
    forward_passes, tokens                sequences and tokens through the RM while training (this process)
    train_seconds, seconds                training only; the whole stage (with rankings, evaluation, saving)
    accuracy        {heldout_panel, train_panel, train_split}   pairwise accuracy on validation rankings by a
                                          held-out / a training labeler, and on (400 prompts of) the training ones
    ceiling         {same_items, same_items_pairs, world_train_panel, bayes_heldout}: how often a training and a
                                          held-out labeler agree on the same validation pairs; the training panel's
                                          agreement in the world's own test (n=2000); the best accuracy any RM can
                                          reach against the held-out labelers (from their known utilities)
    ceiling_ratio                         accuracy.heldout_panel / ceiling.same_items
    accuracy_by_category                  {category: {heldout_panel, train_panel, pairs}}
    calibration     [{bin, n, predicted, observed}]  pairs binned by |r_a − r_b|: σ(|Δr|) vs how often the
                                          RM's favourite won with the held-out labeler
    shift, demo_mean_before, demo_mean_after, rankings, resumed_from_step
    scale                                 the unit of the published scores (raw − shift) / scale: 1, or with
                                          reward.scale_samples the std of the raw scores of SFT's samples
    sft_samples     (reward.scale_samples > 0) {n, raw_std, mean, std}: those samples, and their mean and std in
                                          the published unit (std 1; the mean is relative to the demonstrations)
    parameters_trained, seed              weights the RM trained; the seed its head and batch order came from
    restarts        (reward.restarts > 1) {seed, steps, candidates: [{seed, validation_accuracy_train_panel, ...}]}
    contrast        (reward.contrast_epochs > 0) {rankings, epochs, batch_size, starts, seconds,
                                          forward_passes}: the prompt-contrast phase; starts, seconds and passes
                                          are this process's (0 starts when it resumed the main run), also counted
                                          in forward_passes above
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import statistics
import time
import zlib
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from igpt import hf, launch, losses
from igpt.config import RunConfig
from igpt.errors import StageError
from igpt.io import atomic_dir, clear_if_other_setup, file_crc, write_json
from igpt.prompting import format_prompt
from igpt.rankings import bayes_accuracy, ordered_pairs, pair_agreement

CALIBRATION_EDGES = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, math.inf]  # bins of |r_a − r_b|
TRAIN_ACCURACY_PROMPTS = 400  # training prompts re-scored for accuracy.train_split (the gap to validation: overfit)


# ----------------------------------------------------------------------------------------------------------------
# encoding: prompt + completion + EOS, right-padded


def encode(tokenizer, prompts: list[str], completions: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (N, T): format_prompt(p) + " " + c + EOS, right-padded with pad_token_id.

    Why right padding: the sequence-classification head reads the reward at the rightmost token that is not
    pad_token_id (transformers' GenericForSequenceClassification), which is the EOS here, and with the pads after
    it the real tokens keep positions 0..n-1, exactly as when the sequence is scored alone. An over-long sequence
    loses the start of its prompt, never the end of its completion, where the reward is read. (If a tokenizer's pad
    is its EOS, the head reads the token before the EOS instead: still the same place in training and scoring.)
    """
    texts = [format_prompt(p) + " " + c.strip() for p, c in zip(prompts, completions)]
    ids = [x[-(max_length - 1):] + [tokenizer.eos_token_id]  # keep the end: the last max_length - 1 tokens
           for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    T = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), T), tokenizer.pad_token_id, dtype=torch.long)  # (N, T)
    attention_mask = torch.zeros((len(ids), T), dtype=torch.long)  # (N, T)
    for i, x in enumerate(ids):
        input_ids[i, :len(x)] = torch.tensor(x)
        attention_mask[i, :len(x)] = 1
    return input_ids, attention_mask


class KwiseCollator:
    """rows [{prompt, completions[K_b], ranking[K_b]}] -> one batch of all B prompts' completions, each encoded once.

    Row b's completions are sequences slot = b*K + k, in order; a prompt with K_b < K completions leaves its last
    slots empty (mask False) and no sequence is encoded for them: `slot` says where each encoded sequence goes.
        input_ids, attention_mask (N, T)   N = Σ_b K_b  (= B*K when every prompt has K completions)
        slot (N,)   ranking (B, K)   mask (B, K)
    """

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, rows: list[dict]) -> dict:
        B, K = len(rows), max(len(r["completions"]) for r in rows)
        ranking = torch.zeros((B, K), dtype=torch.long)  # (B, K)
        mask = torch.zeros((B, K), dtype=torch.bool)  # (B, K)
        prompts, completions, slot = [], [], []
        for b, r in enumerate(rows):
            n = len(r["completions"])
            ranking[b, :n] = torch.tensor(r["ranking"])
            mask[b, :n] = True
            for k, c in enumerate(r["completions"]):
                prompts.append(r["prompt"])
                completions.append(c)
                slot.append(b * K + k)
        input_ids, attention_mask = encode(self.tokenizer, prompts, completions, self.max_length)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "slot": torch.tensor(slot),
                "ranking": ranking, "mask": mask}


class PairwiseCollator:
    """rows [{prompt, chosen, rejected}] -> 2B sequences: the B chosen, then the B rejected. (2B, T)"""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, rows: list[dict]) -> dict:
        prompts = [r["prompt"] for r in rows] * 2
        completions = [r["chosen"] for r in rows] + [r["rejected"] for r in rows]
        input_ids, attention_mask = encode(self.tokenizer, prompts, completions, self.max_length)
        return {"input_ids": input_ids, "attention_mask": attention_mask}


def to_pairs(rows, seed: int) -> list[dict]:
    """Rankings -> independent (prompt, chosen, rejected) pairs, shuffled across prompts (the pairwise baseline)."""
    pairs = [{"prompt": r["prompt"], "chosen": r["completions"][w], "rejected": r["completions"][lo]}
             for r in rows for w, lo in ordered_pairs(r["ranking"])]
    random.Random(f"igpt-rm-pairs/{seed}").shuffle(pairs)
    return pairs


# ----------------------------------------------------------------------------------------------------------------
# the trainer: Eq. 1 on (B, K) rewards, or the pairwise loss


def _make_trainer_class():
    from transformers import Trainer

    class RewardTrainer(Trainer):
        loss_is_scaled_for_ga = False  # our loss is a per-batch mean; the Trainer divides by accumulation steps

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.forward_passes = 0  # sequences through the RM in training: K per prompt vs 2 per pair
            self.tokens = 0
            self._accuracy: list[float] = []  # batch accuracies since the last log

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            scores = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits[:, 0]  # (N,)
            if model.training:
                self.forward_passes += scores.shape[0]
                self.tokens += int(inputs["attention_mask"].sum())
            if "ranking" in inputs:
                ranking, mask = inputs["ranking"], inputs["mask"]  # (B, K), (B, K)
                B, K = ranking.shape
                # scatter the N scores into their (prompt, completion) slots; empty slots stay 0 and are masked
                rewards = scores.new_zeros(B * K).index_copy(0, inputs["slot"], scores).view(B, K)  # (B, K)
                loss = losses.kwise_ranking_loss(rewards, ranking, mask)
                accuracy = losses.kwise_accuracy(rewards, ranking, mask).item()
            else:
                chosen, rejected = scores.chunk(2)  # (B,), (B,)
                loss = losses.pairwise_loss(chosen, rejected)
                accuracy = (chosen > rejected).float().mean().item()
            if not math.isnan(accuracy):
                self._accuracy.append(accuracy)
            return (loss, {"rewards": scores}) if return_outputs else loss

        def log(self, logs, start_time=None):
            if self._accuracy and "loss" in logs:  # training accuracy over the batches since the last log
                logs["accuracy"] = sum(self._accuracy) / len(self._accuracy)
                self._accuracy = []
            super().log(logs, start_time)

    return RewardTrainer


# ----------------------------------------------------------------------------------------------------------------
# the model: SFT without its unembedding, plus a scalar head


def init_reward_model(cfg: RunConfig, tokenizer):
    """AutoModelForSequenceClassification(num_labels=1) from the SFT model: transformer weights from sft/, the
    `score` head new (a LoRA SFT is merged into its base first). Refuses if anything but the head is new."""
    from transformers import AutoModelForSequenceClassification

    from igpt.rankings import sft_path

    src = sft_path(cfg)
    if (src / "adapter_config.json").is_file():
        merged = cfg.path / "logs" / "rm_sft_merged"
        if not (merged / "config.json").is_file():
            with atomic_dir(merged) as tmp:
                hf.load_causal_lm(src).merge_and_unload().save_pretrained(tmp)
        src = merged
    kwargs = {"dtype": torch.bfloat16} if cfg.precision == "bf16" else {}
    model, info = AutoModelForSequenceClassification.from_pretrained(str(src), num_labels=1, output_loading_info=True,
                                                                     **kwargs)
    new = [k for k in info["missing_keys"] if not k.startswith("score.")]
    if new:
        raise StageError(f"the reward model did not take these weights from {src}: {new[:5]}; "
                         f"is {src} a causal LM transformers can turn into a sequence classifier?")
    model.config.pad_token_id = tokenizer.pad_token_id  # the head finds the last real token by this id
    return model


def set_shift(model, shift: float, scale: float = 1.0) -> None:
    """Replace the model's raw, bias-free head (weight W) by one that returns (raw − shift) / scale: a score Linear
    with weight W / scale and bias −shift / scale. At scale 1 it shares the trained weight Parameter."""
    old = model.score
    head = nn.Linear(old.in_features, old.out_features, bias=True, device=old.weight.device, dtype=old.weight.dtype)
    if scale == 1.0:
        head.weight = old.weight
    else:
        with torch.no_grad():
            head.weight.copy_(old.weight / scale)
    with torch.no_grad():
        head.bias.fill_(-shift / scale)
    model.score = head


def load_reward_model(path: str | Path, device: str | None = None):
    """(model, tokenizer) of a saved RM; the model's output is already normalised (demonstrations score ~0, and
    with reward.scale_samples SFT's samples spread by 1)."""
    from transformers import AutoModelForSequenceClassification

    from igpt.pretrain import load_tokenizer

    hf.quiet()
    model = AutoModelForSequenceClassification.from_pretrained(str(path))
    set_shift(model, float(getattr(model.config, "igpt_reward_shift", 0.0) or 0.0), reward_scale(model.config))
    tokenizer = load_tokenizer(path)
    tokenizer.padding_side = "right"  # what `encode` does; set for anyone who pads with the tokenizer itself
    return model.to(device or next(model.parameters()).device).eval(), tokenizer


def reward_scale(config) -> float:
    """The unit a saved RM's raw scores are divided by (`igpt_reward_scale` in its config.json; 1 = raw scale)."""
    return float(getattr(config, "igpt_reward_scale", 1.0) or 1.0)


@torch.no_grad()
def score(model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 64,
          max_length: int = 256) -> list[float]:
    """The RM's reward for each (prompt, response), as `model` returns it (normalised for load_reward_model's)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[float] = []
    for i in range(0, len(prompts), batch_size):
        ids, att = encode(tokenizer, prompts[i:i + batch_size], responses[i:i + batch_size], max_length)
        out.extend(model(input_ids=ids.to(device), attention_mask=att.to(device)).logits[:, 0].float().tolist())
    model.train(was_training)
    return out


# ----------------------------------------------------------------------------------------------------------------
# evaluation


def rewards_by_row(model, tokenizer, rows: list[dict], max_length: int) -> list[list[float]]:
    """The RM's reward of each completion of each ranked row: one list per row, in the row's order."""
    flat = score(model, tokenizer, [r["prompt"] for r in rows for _ in r["completions"]],
                 [c for r in rows for c in r["completions"]], max_length=max_length)
    out, i = [], 0
    for r in rows:
        out.append(flat[i:i + len(r["completions"])])
        i += len(r["completions"])
    return out


def _padded(rows: list[dict], rewards: list[list[float]], key: str):
    """Rows of varying K -> rewards, ranking, mask, each (N, K), for losses.kwise_accuracy."""
    K = max(len(r[key]) for r in rows)
    R = torch.zeros((len(rows), K))
    rank = torch.zeros((len(rows), K), dtype=torch.long)
    mask = torch.zeros((len(rows), K), dtype=torch.bool)
    for i, (r, s) in enumerate(zip(rows, rewards)):
        R[i, :len(s)], rank[i, :len(s)], mask[i, :len(s)] = torch.tensor(s), torch.tensor(r[key]), True
    return R, rank, mask


def accuracy(rows: list[dict], rewards: list[list[float]], key: str = "ranking") -> tuple[float, int]:
    """(share of the implied pairs the rewards order like rows[*][key], number of pairs)."""
    if not rows:
        return float("nan"), 0
    R, rank, mask = _padded(rows, rewards, key)
    n = sum(len(ordered_pairs(r[key])) for r in rows)
    return (losses.kwise_accuracy(R, rank, mask).item() if n else float("nan")), n


def calibration(rows: list[dict], rewards: list[list[float]], key: str) -> list[dict]:
    """Pairs binned by the RM's margin |r_a − r_b|: predicted σ(|Δr|) vs observed P(the RM's favourite wins)."""
    bins = defaultdict(list)
    for r, s in zip(rows, rewards):
        for w, lo in ordered_pairs(r[key]):
            d = s[w] - s[lo]  # > 0: the RM agrees with the labeler
            b = next(i for i in range(len(CALIBRATION_EDGES) - 1) if abs(d) < CALIBRATION_EDGES[i + 1])
            bins[b].append((1 / (1 + math.exp(-abs(d))), float(d > 0)))
    return [{"bin": [CALIBRATION_EDGES[b], CALIBRATION_EDGES[b + 1]], "n": len(v),  # last bin: [4, null]
             "predicted": sum(p for p, _ in v) / len(v), "observed": sum(o for _, o in v) / len(v)}
            for b, v in sorted(bins.items())]


def _world_agreement(cfg: RunConfig, w) -> float | None:
    """world.agreement(train_panel, n=2000): read from world/summary.json, where `igpt world` stored it."""
    path = cfg.path / "world" / "summary.json"
    if path.is_file():
        a = json.loads(path.read_text()).get("agreement", {})
        if a.get("n") == 2000 and a.get("train_panel") is not None:
            return a["train_panel"]
    return w.agreement(w.train_panel, n=2000) if w is not None and len(w.train_panel) >= 2 else None


def evaluate(cfg: RunConfig, model, tokenizer, ds, w) -> dict:
    """Accuracy (held-out labelers, training labelers, training split), ceilings, by category, calibration, and
    the failure checks (world-sampled rankings only: the world's labelers cannot demonstrate for imported prompts)."""
    from igpt.world.labelers import failure_checks

    m = cfg.reward.max_length

    def rewards_of(rows):
        return rewards_by_row(model, tokenizer, rows, m)

    val = list(ds["validation"]) if "validation" in ds else []
    train_rows = list(ds["train"].select(range(min(TRAIN_ACCURACY_PROMPTS, len(ds["train"])))))
    val_r, train_r = rewards_of(val), rewards_of(train_rows)
    has_heldout = bool(val) and "heldout_ranking" in val[0]
    key = "heldout_ranking" if has_heldout else "ranking"
    acc_h = accuracy(val, val_r, "heldout_ranking")[0] if has_heldout else None
    acc_t = accuracy(val, val_r, "ranking")[0]
    same, same_n = (pair_agreement([r["ranking"] for r in val], [r["heldout_ranking"] for r in val])
                    if has_heldout else (None, 0))
    by_cat = defaultdict(list)
    for r, s in zip(val, val_r):
        by_cat[r["category"]].append((r, s))
    return {
        "accuracy": {"heldout_panel": acc_h, "train_panel": acc_t, "train_split": accuracy(train_rows, train_r)[0]},
        "ceiling": {"same_items": same, "same_items_pairs": same_n, "world_train_panel": _world_agreement(cfg, w),
                    "bayes_heldout": bayes_accuracy(w, val) if has_heldout and w is not None else None},
        "ceiling_ratio": acc_h / same if has_heldout and same else None,
        "accuracy_by_category": {
            c: {"heldout_panel": accuracy([r for r, _ in v], [s for _, s in v], "heldout_ranking")[0]
                if has_heldout else None,
                "train_panel": accuracy([r for r, _ in v], [s for _, s in v])[0],
                "pairs": accuracy([r for r, _ in v], [s for _, s in v], key)[1]}
            for c, v in sorted(by_cat.items())},
        "calibration": calibration(val, val_r, key),
        # demonstration vs the same answer made toxic, truncated, wrong, ...: does the RM catch what labelers punish?
        "failure_checks": failure_checks(w, lambda p, c: score(model, tokenizer, p, c, max_length=m),
                                         sorted({r["prompt"] for r in val})) if has_heldout and w else None,
    }


# ----------------------------------------------------------------------------------------------------------------
# the stage


def train(cfg: RunConfig, out: str | Path | None = None) -> Path:
    """Train the RM on data/rankings (collected first if missing); write runs/<run>/rm/ (model, tokenizer,
    summary.json). `out` names another folder (e.g. runs/<run>/rm_pairwise, to keep both modes side by side);
    its Trainer checkpoints go to runs/<run>/logs/<out name>/, from which an interrupted run resumes. Runs in one
    process or in several (accelerate launch / torchrun): they share each batch; the main process collects the
    rankings first, and evaluates and publishes at the end."""
    hf.quiet()
    import datasets
    from transformers import TrainingArguments

    from igpt import rankings
    from igpt.pretrain import load_tokenizer

    t_start = time.time()
    r = cfg.reward
    if r.mode not in ("kwise", "pairwise"):
        raise StageError(f"reward.mode must be 'kwise' or 'pairwise', got {r.mode!r}")
    if r.restarts < 1:
        raise StageError(f"reward.restarts={r.restarts}: the number of starts to choose from, 1 (off) or more")
    state = launch.prepare(cfg, "rm")  # refuses an impossible set-up before any model is loaded
    with state.main_process_first():  # one process samples and ranks; the others find the rankings done
        if not (rankings.out_path(cfg) / "dataset_dict.json").is_file():
            rankings.collect(cfg)
    ds = datasets.load_from_disk(str(rankings.out_path(cfg)))
    w = None
    if (cfg.path / "world").exists():
        from igpt import world

        w = world.load(cfg.path / "world")

    tokenizer = load_tokenizer(rankings.sft_path(cfg))
    tokenizer.padding_side = "right"

    def new_model(seed: int):
        torch.manual_seed(seed)  # the new score head (and LoRA's adapters) start from the seed
        with state.main_process_first():  # a LoRA SFT is merged once, by the main process
            model = init_reward_model(cfg, tokenizer)
        if r.use_lora:
            from peft import LoraConfig, get_peft_model

            # SEQ_CLS keeps the new score head fully trainable (peft's modules_to_save) beside the adapters
            lora = LoraConfig(task_type="SEQ_CLS", r=cfg.sft.lora_r, lora_alpha=cfg.sft.lora_alpha,
                              lora_dropout=cfg.sft.lora_dropout, target_modules="all-linear")
            model = get_peft_model(model, lora)
        return model

    train_rows = ds["train"].select_columns(["prompt", "completions", "ranking"])
    if r.max_train_prompts:  # the first N ranked prompts only (notebook 04's pairwise run: about K-wise's cost)
        train_rows = train_rows.select(range(min(r.max_train_prompts, len(train_rows))))
    if r.mode == "kwise":
        train_set, collator, per_step = train_rows, KwiseCollator(tokenizer, r.max_length), r.batch_size
    else:
        # as many sequences per step as a K-wise step (B prompts x K = B*K/2 pairs), so steps cost about the same
        train_set = datasets.Dataset.from_list(to_pairs(train_rows, cfg.seed))
        collator, per_step = PairwiseCollator(tokenizer, r.max_length), max(1, r.batch_size * r.k // 2)
    steps = math.ceil(len(train_set) / per_step) * r.epochs

    out = Path(out) if out is not None else cfg.path / "rm"
    work = cfg.path / "logs" / out.name
    metrics = cfg.path / f"{out.name}_metrics.jsonl"

    contrast = None  # the prompt-contrast rankings (rankings.contrast_rankings), trained alone before the rest
    if r.contrast_epochs > 0:
        rows = rankings.contrast_rankings(list(ds["train"]))
        if rows:
            contrast = datasets.Dataset.from_list([{k: x[k] for k in ("prompt", "completions", "ranking")}
                                                   for x in rows])
        else:  # e.g. imported rankings, or a world's rankings collected without mirrors: the RM trains as usual
            print(f"[igpt] rm: reward.contrast_epochs={r.contrast_epochs}, but {rankings.out_path(cfg)} holds no "
                  "mirror ranking whose order flips with the prompt, so there is no prompt-contrast phase (the "
                  "mini-world's rankings get mirrors with reward.swap_candidates >= 1 and reward.mirror_swaps >= 1)")
    # what the phase was (0 rankings: none to train on), and what it cost in this process (0 starts when the run
    # resumed)
    contrast_batch = r.contrast_batch_size or r.batch_size
    contrast_record = {"rankings": len(contrast) if contrast is not None else 0, "epochs": r.contrast_epochs,
                       "batch_size": contrast_batch, "starts": 0, "seconds": 0.0,
                       "forward_passes": 0} if r.contrast_epochs > 0 else None

    def make_args(seed: int, out_dir: Path, epochs: int, batch: int, n_steps: int, save_steps: int | None,
                  batch_key: str = "reward.batch_size"):
        return TrainingArguments(
            **hf.trainer_kwargs(dataclasses.replace(cfg, seed=seed), out_dir),
            num_train_epochs=epochs,
            per_device_train_batch_size=launch.per_process(batch, state.num_processes, batch_key),
            learning_rate=r.lr,
            lr_scheduler_type="cosine_with_min_lr",
            lr_scheduler_kwargs={"min_lr_rate": 0.1},  # cosine to 10% of the peak (App. C.2)
            warmup_steps=r.warmup_steps,
            adam_beta1=r.betas[0],
            adam_beta2=r.betas[1],
            max_grad_norm=1.0,
            remove_unused_columns=False,  # the collator needs prompt, completions and ranking
            logging_steps=max(1, n_steps // 50),
            save_strategy="steps" if save_steps else "no",
            save_steps=save_steps or 500,
            save_total_limit=1,
        )

    def contrast_start(seed: int, metrics_file: Path):
        """A new RM (head from `seed`) trained on the prompt-contrast rankings alone for reward.contrast_epochs,
        on their own learning-rate schedule, with Eq. 1 on rankings of two texts whatever reward.mode is (an
        interrupted phase starts again: it is short)."""
        n_steps = math.ceil(len(contrast) / contrast_batch) * r.contrast_epochs
        trainer = _make_trainer_class()(
            model=new_model(seed),
            args=make_args(seed, work / "contrast", r.contrast_epochs, contrast_batch, n_steps, None,
                           "reward.contrast_batch_size" if r.contrast_batch_size else "reward.batch_size"),
            train_dataset=contrast, data_collator=KwiseCollator(tokenizer, r.max_length),
            callbacks=[hf.MetricsCallback(metrics_file.with_name(metrics_file.name.replace("metrics",
                                                                                              "contrast_metrics")),
                                          "rm_contrast")])
        t = time.time()
        hf.tidy(trainer, "rm (prompt contrast)").train()
        contrast_record["seconds"] += round(time.time() - t, 2)
        contrast_record["forward_passes"] += trainer.forward_passes
        contrast_record["starts"] += 1
        return trainer.model

    def make_trainer(seed: int, out_dir: Path, save_steps: int, metrics_file: Path, resume_step: int | None,
                     callbacks: tuple = (), desc: str = f"rm ({r.mode})"):
        """A RewardTrainer of a new RM (head from `seed`) whose batches are shuffled by `seed`; with
        reward.contrast_epochs, the new RM is first trained on the prompt-contrast rankings (not when the run
        resumes from a checkpoint, whose weights replace the start)."""
        start = contrast_start(seed, metrics_file) if contrast is not None and resume_step is None else new_model(seed)
        args = make_args(seed, out_dir, r.epochs, per_step, steps, save_steps)  # the paper: one epoch (App. C.2)
        trainer = _make_trainer_class()(
            model=start, args=args, train_dataset=train_set, data_collator=collator,
            callbacks=[hf.MetricsCallback(metrics_file, "rm", resume_step), *callbacks])
        return hf.tidy(trainer, desc)

    data_crc = zlib.crc32(json.dumps([list(ds["train"]["id"]), list(ds["train"]["ranking"])]).encode())  # same data?
    with state.main_process_first():  # the main process clears checkpoints of another setup before anyone reads
        clear_if_other_setup(work, {"reward": dataclasses.asdict(r), "seed": cfg.seed, "precision": cfg.precision,
                                    "sft": file_crc(rankings.sft_path(cfg) / "summary.json"), "rankings": data_crc},
                             "rm")
    t0 = time.time()
    seed, restarts = cfg.seed, None
    if r.restarts > 1:  # several starts, and only the best goes on (igpt/restarts.py)
        if state.num_processes > 1:
            raise StageError(f"reward.restarts={r.restarts} trains its candidates in one process; run `igpt rm` "
                             "without accelerate launch / torchrun, or set reward.restarts=1")
        from igpt.restarts import choose_trajectory

        seed, restarts = choose_trajectory(cfg, work, steps, make_trainer, list(ds["validation"])
                                           if "validation" in ds else [], tokenizer, metrics)
    ckpt = hf.last_checkpoint(work)
    trainer = make_trainer(seed, work, max(1, steps // 4), metrics, hf.checkpoint_step(ckpt))
    n_trained = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    trainer.train(resume_from_checkpoint=ckpt)
    train_seconds = time.time() - t0
    summary = {"mode": r.mode, "epochs": r.epochs, "steps": trainer.state.global_step, "k": r.k,
               "batch_size": per_step, "lr": r.lr, "train_prompts": len(train_rows),
               "train_comparisons": sum(len(ordered_pairs(x)) for x in train_rows["ranking"]),
               "validation_prompts": len(ds["validation"]) if "validation" in ds else 0,
               "forward_passes": trainer.forward_passes, "tokens": trainer.tokens,
               "train_seconds": round(train_seconds, 2), "resumed_from_step": hf.checkpoint_step(ckpt)}
    summary["parameters_trained"] = n_trained
    summary["seed"] = seed
    if contrast_record is not None:  # with reward.restarts, every start had its own prompt-contrast phase
        summary["contrast"] = contrast_record
        summary["forward_passes"] += contrast_record["forward_passes"]
    if restarts is not None:
        summary["restarts"] = restarts
        summary["forward_passes"] += sum(c["forward_passes"] for c in restarts["candidates"])
    model = hf.trained_model(trainer, _load_trained)
    if model is not None:  # the main process; the others wait until it has published
        _publish(cfg, model.eval(), tokenizer, ds, w, summary, out, t_start)
    state.wait_for_everyone()
    return out


def _load_trained(path: Path):
    """The RM the Trainer saved in `path` (gathered under FSDP/ZeRO-3): a whole model, or an adapter on its base."""
    if (path / "adapter_config.json").is_file():
        from peft import AutoPeftModelForSequenceClassification

        return AutoPeftModelForSequenceClassification.from_pretrained(str(path))
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(str(path))


def _publish(cfg: RunConfig, model, tokenizer, ds, w, summary: dict, out: Path, t_start: float) -> None:
    """Evaluate the trained RM, shift its scores so the demonstrations average 0, write runs/<run>/rm/ whole."""
    from igpt import data, rankings

    r = cfg.reward
    if hasattr(model, "merge_and_unload"):  # reward.use_lora: PPO and everyone else load a plain model
        model = model.merge_and_unload()
    summary.update(evaluate(cfg, model, tokenizer, ds, w))
    # normalise: the labelers' demonstrations score 0 on average (the paper does this before RL)
    demos = data.load(cfg, "sft")["train"]
    demo_prompts, demo_texts = list(demos["prompt"]), list(demos["completion"])
    raw_head = model.score  # the trained bias-free head, saved as it is: the shift and the scale go to config.json
    raw = score(model, tokenizer, demo_prompts, demo_texts, max_length=r.max_length)
    shift = sum(raw) / len(raw)
    scale = 1.0
    if r.scale_samples > 0:  # and SFT's samples spread by 1 (lm-human-preferences' reward gain), so β means the same
        sampled_prompts = demo_prompts[:r.scale_samples]
        sampled = _sft_samples(cfg, sampled_prompts)
        scale = statistics.pstdev(score(model, tokenizer, sampled_prompts, sampled, max_length=r.max_length))
        if not scale > 1e-6:
            raise StageError(f"reward.scale_samples={r.scale_samples}: the RM gives SFT's samples the same score "
                             f"(std {scale:.2g}), so there is no unit to scale by; set reward.scale_samples=0")
    set_shift(model, shift, scale)
    model.config.igpt_reward_shift, model.config.igpt_reward_scale = shift, scale
    if r.scale_samples > 0:
        normed = score(model, tokenizer, sampled_prompts, sampled, max_length=r.max_length)
        summary["sft_samples"] = {"n": len(normed), "raw_std": scale, "mean": sum(normed) / len(normed),
                                  "std": statistics.pstdev(normed)}
    after = score(model, tokenizer, demo_prompts, demo_texts, max_length=r.max_length)
    summary.update({"shift": shift, "scale": scale, "demo_mean_before": shift,
                    "demo_mean_after": sum(after) / len(after), "rankings": rankings.out_path(cfg).name})
    normalised_head, model.score = model.score, raw_head
    summary["seconds"] = round(time.time() - t_start, 2)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "summary.json", _finite(summary))
    model.score = normalised_head
    a, c = summary["accuracy"], summary["ceiling"]
    print(f"[igpt] rm ({r.mode}): accuracy {_pct(a['heldout_panel'])} vs held-out labelers, "
          f"{_pct(a['train_panel'])} vs training labelers; labelers agree {_pct(c['same_items'])} on the same pairs; "
          f"{summary['forward_passes']} forward passes, {summary['train_seconds']:.0f}s")


def _sft_samples(cfg: RunConfig, prompts: list[str]) -> list[str]:
    """One SFT sample at reward.temperature per prompt, from the generation cache when an earlier run of this SFT
    model drew them."""
    from igpt import rankings
    from igpt.generation import cache_dir, generate

    policy, tokenizer = rankings._load_policy(cfg)
    return generate(policy, tokenizer, prompts, cfg.reward.max_new_tokens, cfg.reward.temperature,
                    batch_size=cfg.eval.batch_size, seed=cfg.seed, desc="rm scale (SFT samples)",
                    cache=cache_dir(cfg.path))


def _finite(x):
    """nan and inf -> None, so summary.json is strict JSON (a nan accuracy means: no pairs to judge)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def _pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def probe(cfg: RunConfig) -> dict:
    """Can a policy win against this RM? RM best-of-n over SFT samples against SFT's greedy answer, and the
    prompt-swap, entity-swap and shortcut checks (igpt/probe.py), in minutes and before any PPO."""
    from igpt.probe import probe as run_probe

    return run_probe(cfg)
