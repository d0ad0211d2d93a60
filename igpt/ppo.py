"""Stage 5: PPO and PPO-ptx against the reward model (InstructGPT §3.5 "Reinforcement learning", Eq. 2, App. C.3).

    objective(φ) = E_(x,y)~π_RL [ r_θ(x, y) − β · log(π_RL(y|x) / π_SFT(y|x)) ] + γ · E_x~D_pretrain [ log π_RL(x) ]

    igpt.ppo.train(cfg)                 -> runs/<run>/ppo/       (γ = cfg.ppo.ptx_coef, 0 for plain PPO)
    igpt.ppo.train(cfg, ptx_coef=1.0)   -> runs/<run>/ppo_ptx/

One iteration, always in this order (CleanRL style; `b_` = the whole batch, `mb_` = a minibatch):
  1. rollout   sample prompts, generate responses at temperature 1, cut at the first EOS
  2. score     reward model score r_θ(x, y) (bias-normalised), minus a penalty if the response never ends
  3. forward   logprobs of the policy, ref_logprobs of the frozen SFT model, values of the value model
  4. rewards   per-token −β·(logprobs − ref_logprobs), plus the score on the last token   (losses.kl_penalized_rewards)
  5. GAE       advantages and returns (γ_GAE = 1, λ = 0.95), advantages whitened          (losses.gae, masked_whiten)
  6. update    for each PPO epoch and minibatch: clipped policy loss + clipped value loss + γ·ptx loss on a
               pretraining minibatch, one backward, one optimizer step — the paper's "accumulate both into the
               gradient buffers" (App. C.3); during the first ppo.critic_warmup iterations (default 0) the
               value loss alone
  7. EMA       of the policy weights (decay 0.992), metrics to metrics.jsonl, samples, checkpoint

The policy starts from SFT; the reference is the frozen SFT model; the value model starts from the reward model
(the paper's choice) and has its own learning rate. Under `accelerate launch` (DDP, or FSDP2 with the weights
gathered whole for each rollout phase) every process computes the same rollouts and the update is data-parallel
(see `train`). TRL removed its PPO trainer in 1.13 and no maintained library mixes the pretraining loss into the
same step, so this file does it, in the open.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from igpt import hf, launch, losses
from igpt.config import RunConfig
from igpt.errors import LaunchError, StageError
from igpt.generation import decode_responses, generate_ids
from igpt.guards import check_finite
from igpt.io import MetricsLogger, atomic_dir, clear_if_other_setup, file_crc, write_json, write_jsonl
from igpt.pretrain import load_corpus, load_tokenizer, pack


def out_name(ptx_coef: float) -> str:
    return "ppo_ptx" if ptx_coef > 0 else "ppo"


# ----------------------------------------------------------------------------------------------------------------
# forward passes over query + response


def _inputs(query: torch.Tensor, response: torch.Tensor, response_mask: torch.Tensor, pad_id: int):
    """Concatenate left-padded queries and right-padded responses; positions count real tokens only, exactly as
    `generate` counted them, so logprobs here match the sampling distribution."""
    input_ids = torch.cat([query, response], dim=1)  # (B, Tq + T)
    attention_mask = torch.cat([(query != pad_id).long(), response_mask.long()], dim=1)  # (B, Tq + T)
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)  # (B, Tq + T)
    return input_ids, attention_mask, position_ids


def policy_logprobs(model, query, response, response_mask, pad_id, temperature: float, with_entropy: bool = False):
    """log π(y_t | x, y_<t) for every response token (B, T); optionally the per-token entropy (B, T)."""
    input_ids, attention_mask, position_ids = _inputs(query, response, response_mask, pad_id)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    logits = logits[:, query.shape[1] - 1:-1].float() / temperature  # (B, T, V): the predictions of y_1..y_T
    logprobs = losses.logprobs_from_logits(logits, response)  # (B, T)
    return (logprobs, losses.entropy_from_logits(logits)) if with_entropy else logprobs


def reference_logprobs(policy, ref, query, response, response_mask, pad_id, temperature: float):
    """log π_SFT(y_t | ...) (B, T): the frozen SFT model, or the LoRA policy with its adapter disabled."""
    if ref is not None:
        return policy_logprobs(ref, query, response, response_mask, pad_id, temperature)
    with policy.disable_adapter():
        return policy_logprobs(policy, query, response, response_mask, pad_id, temperature)


def value_forward(value_model, query, response, response_mask, pad_id):
    """V(s_t) for the state before each response token (B, T): the sequence-classification head of the reward
    model applied at every position instead of only the last."""
    input_ids, attention_mask, position_ids = _inputs(query, response, response_mask, pad_id)
    backbone = getattr(value_model, value_model.base_model_prefix)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).last_hidden_state
    return value_model.score(hidden).squeeze(-1)[:, query.shape[1] - 1:-1].float()  # (B, T)


class PolicyAndValue(torch.nn.Module):
    """The two trained models as one module: accelerate prepares one model per FSDP2 or DeepSpeed engine, and under
    DDP one wrapper averages both models' gradients. forward gives the policy's logprobs (B, T) and the value
    model's V(s_t) (B, T) on the response tokens; with `ptx_ids` (n, L) instead, the policy's logits (n, L, V) on
    pretraining blocks."""

    def __init__(self, policy, value_model):
        super().__init__()
        self.policy, self.value = policy, value_model

    def forward(self, query=None, response=None, response_mask=None, pad_id=0, temperature=1.0, ptx_ids=None):
        if ptx_ids is not None:
            return self.policy(input_ids=ptx_ids).logits
        return (policy_logprobs(self.policy, query, response, response_mask, pad_id, temperature),
                value_forward(self.value, query, response, response_mask, pad_id))


def ptx_batches(cfg: RunConfig, tokenizer, n: int, generator: torch.Generator):
    """An endless stream of (n, ptx_block) pretraining blocks from the web's training split (D_pretrain in Eq. 2).
    Each draw is independent (with replacement) so the generator's state alone says where a resumed run is."""
    train_texts, _ = load_corpus(cfg)
    blocks = torch.tensor(pack(train_texts, tokenizer, cfg.ppo.ptx_block))  # (N, L)
    while True:
        yield blocks[torch.randint(len(blocks), (n,), generator=generator)]  # (n, L)


# ----------------------------------------------------------------------------------------------------------------
# rewards


def make_scorer(cfg: RunConfig, device):
    """The reward source: (prompts, responses) -> scores (B,). The trained reward model (re-tokenising the text,
    so its tokenizer may differ from the policy's), or the world's gold score for debugging and over-optimisation
    studies."""
    if cfg.ppo.reward_source == "gold":
        from igpt import world

        w = world.load(cfg.path / "world")
        return lambda prompts, responses: torch.tensor([w.score(p, r).overall for p, r in zip(prompts, responses)])
    if cfg.ppo.reward_source != "rm":
        raise StageError(f"ppo.reward_source must be 'rm' or 'gold', got {cfg.ppo.reward_source!r}")
    from igpt import reward

    rm_dir = cfg.path / "rm"
    if not (rm_dir / "config.json").is_file():
        raise StageError(f"{rm_dir} has no reward model: run `igpt rm --run-dir {cfg.run_dir}` (notebook 04) first")
    rm, rm_tok = reward.load_reward_model(rm_dir)
    rm.to(device)
    return lambda prompts, responses: torch.tensor(reward.score(rm, rm_tok, prompts, responses,
                                                                max_length=cfg.reward.max_length))


# ----------------------------------------------------------------------------------------------------------------
# checkpoints: policy, value, EMA, optimizer, scheduler and RNG, written whole or not at all


def save_checkpoint(path: Path, iteration: int, policy, value_model, ema, optimizer_state, scheduler, gen,
                    kl_coef: float) -> None:
    """The whole run state (β too: the adaptive controller's, for the next iteration), in one format whatever the
    topology: a run checkpointed under FSDP2 resumes in one process or under DDP, and the other way round.
    `optimizer_state` as `launch.whole_optimizer_state` gives it."""
    with atomic_dir(path) as tmp:
        save_model(policy, str(tmp / "policy.safetensors"))  # save_model handles tied embeddings
        save_model(value_model, str(tmp / "value.safetensors"))
        save_file({f"{i}": t.contiguous() for i, t in enumerate(ema)}, tmp / "ema.safetensors")
        torch.save({"optimizer": optimizer_state, "scheduler": scheduler.state_dict()}, tmp / "optim.pt")
        save_file({"torch": torch.get_rng_state(), "prompts": gen.get_state()}, tmp / "rng.safetensors")
        write_json(tmp / "state.json", {"iteration": iteration, "kl_coef": kl_coef})


RESUMABLE_CHANGES = ("iterations", "save_every", "sample_every", "snapshot_every")  # a run at 40 goes on to 80


def setup(cfg: RunConfig, ptx_coef: float) -> dict:
    """What a checkpoint depends on (io.clear_if_other_setup): the ppo config but RESUMABLE_CHANGES, this run's γ
    (ptx fields only when γ > 0), seed, precision, and the SFT and reward models (their summary.json)."""
    ignored = RESUMABLE_CHANGES + (("ptx_coef", "ptx_ratio", "ptx_block") if ptx_coef == 0 else ("ptx_coef",))
    return {"ppo": {k: v for k, v in dataclasses.asdict(cfg.ppo).items() if k not in ignored}, "ptx_coef": ptx_coef,
            "seed": cfg.seed, "precision": cfg.precision, "sft": file_crc(cfg.path / "sft" / "summary.json"),
            "rm": file_crc(cfg.path / "rm" / "summary.json") if cfg.ppo.reward_source == "rm" else None}


def trainable_weights(policy) -> dict[str, torch.Tensor]:
    """The policy's trainable weights by name (all of them, or the LoRA adapter's); a tensor tied to another (the
    tied unembedding) appears once, as named_parameters gives it. Under FSDP2 the whole tensors: a collective, so
    every process calls it."""
    return {name: launch.full_tensor(t).detach().contiguous() for name, t in policy.named_parameters()
            if t.requires_grad}


def save_snapshot(path: Path, weights: dict[str, torch.Tensor]) -> None:
    """trainable_weights(policy) of one iteration, for evaluate.py's over-optimisation curve."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(weights, str(tmp))
    tmp.replace(path)


def load_checkpoint(path: Path, policy, value_model, ema, optimizer, scheduler, gen) -> tuple[int, float]:
    """Restore what save_checkpoint wrote; returns (the last iteration done, β for the next one)."""
    load_model(policy, str(path / "policy.safetensors"))
    load_model(value_model, str(path / "value.safetensors"))
    saved = load_file(path / "ema.safetensors")
    for i, t in enumerate(ema):
        t.copy_(saved[f"{i}"])
    state = torch.load(path / "optim.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = load_file(path / "rng.safetensors")
    torch.set_rng_state(rng["torch"])
    gen.set_state(rng["prompts"])
    state = json.loads((path / "state.json").read_text())
    return state["iteration"], state["kl_coef"]


# ----------------------------------------------------------------------------------------------------------------
# the stage


def train(cfg: RunConfig, ptx_coef: float | None = None, on_iteration=None) -> Path:
    """Run PPO (ptx_coef 0) or PPO-ptx (ptx_coef > 0; default cfg.ppo.ptx_coef) from the SFT model against the
    reward model; write runs/<run>/ppo/ or runs/<run>/ppo_ptx/. Resumable from runs/<run>/logs/<name>/checkpoint.
    `on_iteration(row)` is called with each iteration's metrics (the notebook's live dashboard)."""
    hf.quiet()
    from transformers import AutoModelForSequenceClassification

    from igpt import data, world
    from igpt.sft import compare_policies

    p = cfg.ppo
    gamma_ptx = p.ptx_coef if ptx_coef is None else ptx_coef
    name = out_name(gamma_ptx)
    if p.batch_size % p.mini_batch_size:
        raise StageError(f"ppo.batch_size ({p.batch_size}) must be a multiple of ppo.mini_batch_size "
                         f"({p.mini_batch_size})")
    # Several processes (accelerate launch / torchrun, DDP): every process computes the same rollouts (same seed,
    # same weights), and the update is data-parallel: each takes its share of every minibatch and of its ptx
    # blocks, and DDP averages the gradients. So n processes end where one process with the whole batch does.
    # Under FSDP2 the same holds; the weights are sharded, gathered whole for each rollout phase (launch.unsharded).
    if p.kl_target < 0 or (p.kl_target > 0 and p.kl_horizon <= 0):
        raise StageError(f"ppo.kl_target ({p.kl_target}) must be 0 (a fixed β) or a KL in nats above 0, with "
                         f"ppo.kl_horizon ({p.kl_horizon}) a number of episodes above 0")
    launch.prepare(cfg, "ppo")
    topology = launch.strategy()
    if topology.startswith("zero") or (topology == "fsdp" and os.environ.get("FSDP_VERSION", "1") != "2"):
        raise LaunchError(f"igpt ppo runs in one process, under DDP or under FSDP2, not under {topology}"
                          f"{' version 1' if topology == 'fsdp' else ''}: use configs/accelerate/ddp.yaml, or "
                          f"configs/accelerate/fsdp.yaml (fsdp_version: 2) for a model DDP cannot hold")
    accelerator = launch.accelerator(cfg)
    sharded = accelerator.is_fsdp2
    n_proc, rank, main = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process
    device = accelerator.device
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)  # prompt order and ptx blocks: part of the checkpoint

    sft_dir = cfg.path / "sft"
    if not (sft_dir / "config.json").is_file() and not (sft_dir / "adapter_config.json").is_file():
        raise StageError(f"{sft_dir} has no model: run `igpt sft --run-dir {cfg.run_dir}` (notebook 03) first")
    tokenizer = load_tokenizer(sft_dir)
    pad_id = tokenizer.pad_token_id
    policy = hf.load_causal_lm(sft_dir, cfg, trainable=True).to(device)
    lora = hasattr(policy, "disable_adapter")
    if sharded and lora:
        raise LaunchError(f"{sft_dir} is a LoRA adapter, and igpt ppo under FSDP trains full parameters; a LoRA "
                          "policy fits DDP: launch with configs/accelerate/ddp.yaml")
    # π_SFT, frozen: with LoRA it is the policy itself with its adapter switched off (no second copy in memory)
    ref = None if lora else hf.load_causal_lm(sft_dir, cfg).to(device).eval().requires_grad_(False)
    scorer = make_scorer(cfg, device)
    value_init = cfg.path / "rm" if (cfg.path / "rm" / "config.json").is_file() else None
    if value_init is None:  # gold reward without a trained RM: a fresh value head on the SFT model
        value_model = AutoModelForSequenceClassification.from_pretrained(sft_dir, num_labels=1)
    else:
        from igpt.reward import reward_scale

        value_model = AutoModelForSequenceClassification.from_pretrained(value_init, num_labels=1)
        with torch.no_grad():  # V starts as the RM's head, in the unit the RM's scores come in (reward.scale_samples)
            value_model.score.weight.div_(reward_scale(value_model.config))
    value_model.config.pad_token_id = pad_id
    value_model.to(device)
    w = world.load(cfg.path / "world")
    prompts_all = list(data.load(cfg, "ppo_prompts")["train"]["prompt"])
    ptx_stream = ptx_batches(cfg, tokenizer, p.mini_batch_size * p.ptx_ratio, gen) if gamma_ptx > 0 else None

    optimizer = torch.optim.AdamW([
        {"params": [t for t in policy.parameters() if t.requires_grad], "lr": p.lr},
        {"params": list(value_model.parameters()), "lr": p.value_lr},
    ], betas=(0.9, 0.95), eps=1e-5, weight_decay=0.0)
    # warm-up from a tenth of the peak over the first warmup_iters iterations, then constant (App. C.3)
    # (the policy's starts after the ppo.critic_warmup iterations in which only the value model learns)
    def warmup_from(start: int):
        return lambda it: 0.1 + 0.9 * min(1.0, max(0, it - start) / max(1, p.warmup_iters))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [warmup_from(p.critic_warmup), warmup_from(0)])
    ema = [t.detach().clone().float() for t in policy.parameters()]

    ckpt = cfg.path / "logs" / name / "checkpoint"
    with accelerator.main_process_first():  # the main process clears checkpoints of another setup before anyone reads
        clear_if_other_setup(ckpt.parent, setup(cfg, gamma_ptx), name)
    start, kl_coef = 0, p.kl_coef  # β of the next iteration: fixed, or the adaptive controller's (ppo.kl_target)
    if (ckpt / "state.json").is_file():
        last, kl_coef = load_checkpoint(ckpt, policy, value_model, ema, optimizer, scheduler, gen)
        start = last + 1
    # the wrapper DDP trains through (in one process: the module itself; under FSDP2 the models, now sharded in
    # place); rollouts call the plain models, with whole weights inside launch.unsharded
    models_dp, optimizer = accelerator.prepare(PolicyAndValue(policy, value_model), optimizer)
    reshard = accelerator.state.fsdp_plugin.reshard_after_forward if sharded else True
    if sharded:
        if main:
            print(f"[igpt] {name}: policy and value model sharded over {n_proc} processes (FSDP2)")
        ema = [launch.local_tensor(launch.shard_like(e, t)) for e, t in zip(ema, policy.parameters())]  # own shard
        if start:  # accelerate swapped the optimizer's parameters for their shards: cut its state the same way
            launch.load_sharded_optimizer_state(torch.load(ckpt / "optim.pt", weights_only=True)["optimizer"],
                                                optimizer)
        # whole copies on the main process (CPU) for checkpoints and the published models; a fresh value head draws
        # random numbers, which must not shift the main process's sampling away from the others'
        with torch.random.fork_rng(devices=[]):
            copies = (hf.load_causal_lm(sft_dir, cfg), AutoModelForSequenceClassification.from_pretrained(
                value_init or sft_dir, num_labels=1, pad_token_id=pad_id)) if main else (None, None)
        with torch.no_grad():  # FSDP2 makes the first module to run forward its root: let it be the real root
            models_dp(ptx_ids=torch.full((1, 1), pad_id, device=device))
    if main:
        log = MetricsLogger(cfg.path / f"{name}_metrics.jsonl", resume_from_step=start - 1 if start else None)
        samples_log = MetricsLogger(cfg.path / f"{name}_samples.jsonl", resume_from_step=start - 1 if start else None)

    from tqdm.auto import tqdm

    last_good = None  # the previous minibatch's finite loss terms, for the diagnosis of a NaN
    bar = tqdm(range(start, p.iterations), initial=start, total=p.iterations, desc=name, dynamic_ncols=True,
               disable=not main)
    for it in bar:
        t0 = time.time()
        # 1. rollout ------------------------------------------------------------------------------------------
        idx = torch.randint(len(prompts_all), (p.batch_size,), generator=gen)
        b_prompts = [prompts_all[i] for i in idx.tolist()]
        policy.eval()
        with launch.unsharded(models_dp, reshard):  # under FSDP2: whole weights, gathered once for all tokens
            b_query, b_response, b_mask = generate_ids(policy, tokenizer, b_prompts, p.max_new_tokens,
                                                       p.temperature)
        b_query, b_response, b_mask = b_query.to(device), b_response.to(device), b_mask.to(device)  # (B,Tq) (B,T)
        b_texts = decode_responses(tokenizer, b_response, b_mask)
        t1 = time.time()
        # 2. score --------------------------------------------------------------------------------------------
        b_ended = (b_response == tokenizer.eos_token_id).any(dim=1)  # (B,)
        with torch.no_grad():
            b_scores = scorer(b_prompts, b_texts).to(device).float()  # (B,)
        b_scores = b_scores - p.missing_eos_penalty * (~b_ended).float()
        t2 = time.time()
        # 3. forward passes -----------------------------------------------------------------------------------
        with torch.no_grad(), launch.unsharded(models_dp, reshard):
            b_logprobs, b_entropy = policy_logprobs(policy, b_query, b_response, b_mask, pad_id, p.temperature,
                                                    with_entropy=True)  # (B, T), (B, T)
            b_ref_logprobs = reference_logprobs(policy, ref, b_query, b_response, b_mask, pad_id, p.temperature)
            b_values = value_forward(value_model, b_query, b_response, b_mask, pad_id)  # (B, T)
            # 4. rewards and 5. GAE -------------------------------------------------------------------------------
            b_rewards, b_kl = losses.kl_penalized_rewards(b_scores, b_logprobs, b_ref_logprobs, b_mask, kl_coef)
            b_advantages, b_returns = losses.gae(b_rewards, b_values, b_mask, p.gamma, p.lam)  # (B, T), (B, T)
            b_advantages = losses.masked_whiten(b_advantages, b_mask)
        t3 = time.time()
        # 6. update -------------------------------------------------------------------------------------------
        policy.train()
        value_model.train()
        stats: dict[str, list[float]] = {}
        actor = it >= p.critic_warmup  # before it, the value model alone learns (ppo.critic_warmup)
        for _ in range(p.ppo_epochs):
            for mb_all in torch.randperm(p.batch_size, generator=gen).split(p.mini_batch_size):
                mb = mb_all[rank::n_proc].to(device)  # this process's share of the minibatch
                mb_mask = b_mask[mb]
                # the token means below are over this share; weighted by its share of the minibatch's tokens, DDP's
                # average over processes is the token mean over the whole minibatch, as in one process
                scale = mb_mask.sum() * n_proc / b_mask[mb_all.to(device)].sum()
                optimizer.zero_grad(set_to_none=True)
                ptx = torch.zeros((), device=device)
                if ptx_stream is not None and actor:
                    x = next(ptx_stream)[rank::n_proc].to(device)  # (n / n_proc, L) pretraining blocks
                    # the γ-weighted pretraining gradient goes into the buffers first, unsynced; the PPO backward
                    # below then averages the sum over processes: one optimizer step for both (App. C.3)
                    with accelerator.no_sync(models_dp):
                        ptx = losses.ptx_loss(models_dp(ptx_ids=x), x, torch.ones_like(x))
                        accelerator.backward(gamma_ptx * ptx)
                new_logprobs, new_values = models_dp(b_query[mb], b_response[mb], mb_mask, pad_id, p.temperature)
                pg_loss, pg_stats = losses.policy_loss(new_logprobs, b_logprobs[mb], b_advantages[mb], mb_mask,
                                                       p.cliprange)
                vf_loss, vf_stats = losses.value_loss(new_values, b_values[mb], b_returns[mb], mb_mask,
                                                      p.cliprange_value)
                # in the critic warm-up the policy loss is kept at weight 0 rather than left out, so that every
                # parameter DDP wraps still gets a (zero) gradient and the step leaves the policy as it is
                accelerator.backward(scale * ((pg_loss if actor else 0.0 * pg_loss) + p.vf_coef * vf_loss))
                grad_norm = accelerator.clip_grad_norm_(models_dp.parameters(), 1.0)
                # a NaN/Inf stops here, before the step: the last checkpoint stays the last good one
                terms = {"policy_loss": pg_loss.item(), "value_loss": vf_loss.item(), "ptx_loss": ptx.item(),
                         "grad_norm": grad_norm.item()}
                check_finite(it, terms, last_good, stage=name, lr_key="ppo.lr",
                             checkpoint=str(ckpt) if (ckpt / "state.json").is_file() else None)
                last_good = {"step": it, **terms}
                optimizer.step()
                total = losses.ppo_ptx_loss(pg_loss, vf_loss, ptx, p.vf_coef, gamma_ptx)  # Eq. 2's minibatch loss
                for k, v in {**pg_stats, **vf_stats, "policy_loss": pg_loss.item(), "value_loss": vf_loss.item(),
                             "ptx_loss": ptx.item(), "loss": total.item()}.items():
                    stats.setdefault(k, []).append(float(v))
        lrs = [g["lr"] for g in optimizer.param_groups]  # the rates this iteration's update used
        scheduler.step()
        # 7. EMA, metrics, samples, checkpoint ------------------------------------------------------------------
        losses.ema_update(ema, [launch.local_tensor(t).detach().float() for t in policy.parameters()], p.ema_decay)
        t4 = time.time()
        seq_kl = (b_kl * b_mask).sum(1)  # (B,)
        beta = kl_coef  # the β this iteration's rewards used
        if p.kl_target > 0:  # Ziegler et al. 2019's controller: β for the next iteration from this one's KL
            kl_coef = losses.adaptive_kl_coef(kl_coef, seq_kl.mean().item(), p.kl_target, p.batch_size,
                                              p.kl_horizon, min_coef=p.kl_coef)
        n_tokens = b_mask.sum(1)  # (B,)
        gold = [w.score(q, r).overall for q, r in zip(b_prompts, b_texts)]
        row = {
            "step": it, "episodes": (it + 1) * p.batch_size,
            "objective/scores": b_scores.mean().item(), "objective/scores_std": b_scores.std().item(),
            "objective/rewards": (b_rewards * b_mask).sum(1).mean().item(),
            "objective/kl": seq_kl.mean().item(),
            "objective/kl_per_token": (seq_kl.sum() / n_tokens.sum().clamp(min=1)).item(), "objective/kl_coef": beta,
            "objective/entropy": losses.masked_mean(b_entropy, b_mask).item(),
            "objective/gold": sum(gold) / len(gold),
            **{f"ppo/{k}": sum(v) / len(v) for k, v in stats.items()},
            "ppo/explained_variance": losses.explained_variance(b_values, b_returns, b_mask),
            "response/length": n_tokens.mean().item(), "response/eos_rate": b_ended.float().mean().item(),
            "lr/policy": lrs[0], "lr/value": lrs[1],
            "time/generate": t1 - t0, "time/score": t2 - t1, "time/forward": t3 - t2, "time/update": t4 - t3,
        }
        if on_iteration is not None:
            on_iteration(row)
        snapshot = p.snapshot_every and (it + 1) % p.snapshot_every == 0
        weights = trainable_weights(policy) if snapshot and (main or sharded) else None  # sharded: all gather
        save = (it + 1) % p.save_every == 0 or it == p.iterations - 1
        if save and sharded:  # whole weights, EMA and optimizer state: collectives, every process takes part
            state = (launch.whole(policy, copies[0]), launch.whole(value_model, copies[1]),
                     [launch.full_tensor(e, like=t) for e, t in zip(ema, policy.parameters())],
                     launch.whole_optimizer_state(optimizer))
        elif save and main:
            state = (policy, value_model, ema, optimizer.state_dict())
        if not main:  # every process holds the same rollouts and weights: one writes them
            continue
        log.log(row)
        bar.set_postfix(score=f"{row['objective/scores']:.2f}", kl=f"{row['objective/kl']:.2f}")
        if it % p.sample_every == 0 or it == p.iterations - 1:
            for i in range(min(4, p.batch_size)):
                n = int(n_tokens[i].item())
                samples_log.log({"step": it, "prompt": b_prompts[i], "response": b_texts[i],
                                 "score": b_scores[i].item(), "gold": gold[i], "kl": seq_kl[i].item(),
                                 "kl_per_token": b_kl[i, :n].tolist(),
                                 "tokens": [tokenizer.decode([t]) for t in b_response[i, :n].tolist()]})
        if snapshot:
            save_snapshot(ckpt.parent / "snapshots" / f"iter_{it + 1:05d}.safetensors", weights)
        if save:
            save_checkpoint(ckpt, it, *state, scheduler, gen, kl_coef)

    out = cfg.path / name
    if sharded:  # whole weights, in the copies on the main process (collectives: every process takes part)
        ema = [launch.full_tensor(e, like=t) for e, t in zip(ema, policy.parameters())]
        policy, value_model = launch.whole(policy, copies[0]), launch.whole(value_model, copies[1])
        if main:
            policy, value_model = policy.to(device), value_model.to(device)
    if not main:
        accelerator.wait_for_everyone()  # until the main process has published
        return out
    # the published folder: the raw policy, its EMA beside it, the value model, and a held-out report against SFT
    policy.eval()
    ema_policy = copy.deepcopy(policy)
    with torch.no_grad():
        for t, e in zip(ema_policy.parameters(), ema):
            t.copy_(e.to(t.dtype))
    # the frozen reference is the SFT model; with LoRA (no separate reference) load it for the comparison
    sft_model = ref if ref is not None else hf.load_causal_lm(sft_dir, cfg).to(device)
    summary, samples = compare_policies(cfg, w, {"sft": sft_model, name: policy}, tokenizer, baseline="sft")
    summary.update({"ptx_coef": gamma_ptx, "kl_coef": p.kl_coef, "kl_target": p.kl_target, "kl_coef_final": kl_coef,
                    "iterations": p.iterations,
                    "episodes": p.iterations * p.batch_size, "reward_source": p.reward_source})
    with atomic_dir(out) as tmp:
        policy.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        ema_policy.save_pretrained(tmp / "ema")
        value_model.save_pretrained(tmp / "value")
        write_json(tmp / "summary.json", summary)
        write_jsonl(tmp / "samples.jsonl", samples)
        if (ckpt.parent / "snapshots").is_dir():
            shutil.copytree(ckpt.parent / "snapshots", tmp / "snapshots")
    pol = summary["policies"]
    sampled = (f"; at temperature 1 {pol['sft']['gold_sampled']:.3f} -> {pol[name]['gold_sampled']:.3f}"
               if "gold_sampled" in pol[name] else "")
    print(f"[igpt] {name}: gold {pol['sft']['gold_overall']:.3f} (sft) -> {pol[name]['gold_overall']:.3f}{sampled}, "
          f"pretrain val loss {pol['sft']['pretrain_val_loss']:.3f} -> {pol[name]['pretrain_val_loss']:.3f}")
    accelerator.wait_for_everyone()
    return out
