"""The math of RLHF as small pure torch functions: reward-model loss, KL-shaped rewards, GAE, PPO-ptx.

Every stage that trains something imports its loss from here, so the equations live in one place:

    reward.train  kwise_ranking_loss (InstructGPT Eq. 1), kwise_accuracy, pairwise_loss
    ppo.train     kl_penalized_rewards (the β-term of Eq. 2) -> gae -> masked_whiten(advantages)
                  -> policy_loss + value_loss + ptx_loss (the γ-term of Eq. 2) -> ppo_ptx_loss -> ema_update

One tensor vocabulary throughout (B = batch, T = response length, K = completions per prompt, V = vocab):
    query (B, Tq), response (B, T)         token ids
    logprobs, ref_logprobs (B, T)          log π(y_t | x, y_<t) of the sampled token, policy and frozen SFT model
    values (B, T)                          value head V(s_t)
    scores (B,)                            reward-model score of the whole response
    rewards (B, T)                         per-token reward after KL shaping
    advantages, returns (B, T)             GAE outputs
    response_mask (B, T)                   1.0 on real response tokens, 0.0 on padding / after EOS

"Eq. n" without a paper name means InstructGPT (Ouyang et al. 2022):
    Eq. 1  loss(θ) = −1/C(K,2) · E_{(x, y_w, y_l) ~ D}[ log σ(r_θ(x, y_w) − r_θ(x, y_l)) ]
    Eq. 2  objective(φ) = E_{(x,y) ~ π_RL}[ r_θ(x, y) − β · log(π_RL(y|x) / π_SFT(y|x)) ]
                          + γ · E_{x ~ D_pretrain}[ log π_RL(x) ]
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

# ----------------------------------------------------------------------------------------------------------------
# Reward model (InstructGPT §3.5, Eq. 1)


def _ranking_pairs(rewards: Tensor, ranking: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """All (winner, loser) pairs a ranking implies, as a (B, K, K) reward-difference and a (B, K, K) pair mask.

    Entry [b, i, j] is the pair "completion i beats completion j": r_i − r_j, and whether rank_i < rank_j
    with both completions real. Ties (rank_i == rank_j) and padded slots therefore give no pair.
    """
    diff = rewards[:, :, None] - rewards[:, None, :]  # (B, K, K)  r_i − r_j
    pairs = ranking[:, :, None] < ranking[:, None, :]  # (B, K, K)  i ranked strictly better than j
    if mask is not None:
        mask = mask.bool()
        pairs = pairs & mask[:, :, None] & mask[:, None, :]
    return diff, pairs


def kwise_ranking_loss(rewards: Tensor, ranking: Tensor, mask: Tensor | None = None) -> Tensor:
    """InstructGPT Eq. 1: the K-wise reward-model loss.

        loss = mean_b [ −1/P_b · Σ_{(w, l): rank_w < rank_l} log σ(r_w − r_l) ]

    rewards (B, K): scalar RM outputs for the K completions of each prompt.
    ranking (B, K) long: rank position of each completion, 0 = best; equal ranks are a tie and give no pair.
    mask (B, K) bool: real completions (a prompt may have fewer than K); padded slots give no pair.

    All C(K,2) comparisons of one prompt are one batch element, weighted 1/P_b (P_b = C(K,2) without ties or
    padding). The paper does this because the comparisons of a prompt are strongly correlated: shuffled into
    separate examples they overfit in a single epoch, and together they need only K forward passes, not C(K,2)
    (§3.5). Prompts with no pair contribute nothing; if no prompt has a pair the loss is a zero that still has
    a grad_fn, so `loss.backward()` never fails on a degenerate batch.
    """
    diff, pairs = _ranking_pairs(rewards, ranking, mask)  # (B, K, K), (B, K, K)
    pairs = pairs.to(rewards.dtype)
    # logsigmoid rather than log(sigmoid(.)): stays finite for large negative margins.
    nll = -(F.logsigmoid(diff) * pairs).sum(dim=(1, 2))  # (B,)  summed over the pairs of each prompt
    n_pairs = pairs.sum(dim=(1, 2))  # (B,)  P_b
    has_pairs = n_pairs > 0  # (B,)
    if not has_pairs.any():
        return (rewards * 0.0).sum()
    per_prompt = nll[has_pairs] / n_pairs[has_pairs]  # (B',)
    return per_prompt.mean()


@torch.no_grad()
def kwise_accuracy(rewards: Tensor, ranking: Tensor, mask: Tensor | None = None) -> Tensor:
    """Share of the implied pairs that the reward model orders correctly (strictly r_w > r_l).

    Pairs are pooled over the batch (a prompt with more pairs weighs more), unlike `kwise_ranking_loss`.
    An exact reward tie counts as wrong. Returns a 0-dim tensor; nan when the batch implies no pair.
    """
    diff, pairs = _ranking_pairs(rewards, ranking, mask)  # (B, K, K)
    n = pairs.sum()
    if n == 0:
        return torch.tensor(float("nan"))
    return ((diff > 0) & pairs).sum().float() / n.float()


def pairwise_loss(chosen: Tensor, rejected: Tensor) -> Tensor:
    """The pairwise baseline: mean of −log σ(r_chosen − r_rejected) over the batch (Eq. 1 with K = 2).

    chosen, rejected (B,): RM scores of the preferred and the rejected completion of each pair.
    """
    return -F.logsigmoid(chosen - rejected).mean()


# ----------------------------------------------------------------------------------------------------------------
# Masked statistics: every reduction over (B, T) must ignore padding and tokens after EOS.


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of x over positions where mask is 1, over all positions (dim=None) or along `dim`.

    An empty mask gives 0 rather than nan, so a batch with no response tokens yields a zero loss, not nan weights.
    """
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of x over positions where mask is 1 (a 0-dim tensor); Bessel-corrected when `unbiased`."""
    mask = mask.to(x.dtype)
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        # n / (n − 1), with n ≤ 1 left uncorrected (a single token has variance 0 either way).
        var = var * n / (n - 1.0).clamp(min=1.0)
    return var


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """Normalise x to mean 0, variance 1 over the real tokens only; 0 where mask is 0.

    PPO whitens advantages per batch (common practice since OpenAI baselines; Andrychowicz et al. 2021, "What
    matters in on-policy RL", find it matters). Padding must not enter the statistics: a long tail of zero
    advantages would drag the mean to 0 and shrink the variance. With shift_mean=False the mean is kept
    (only the scale changes), which is what one wants for rewards.
    """
    mask = mask.to(x.dtype)
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


# ----------------------------------------------------------------------------------------------------------------
# Rewards and advantages (InstructGPT Eq. 2, GAE)


def kl_penalized_rewards(
    scores: Tensor, logprobs: Tensor, ref_logprobs: Tensor, response_mask: Tensor, kl_coef: float
) -> tuple[Tensor, Tensor]:
    """Per-token rewards: the first expectation of InstructGPT Eq. 2, r_θ(x, y) − β · log(π_RL(y|x) / π_SFT(y|x)).

    The sequence-level KL term is spread over tokens, log π(y|x) = Σ_t log π(y_t | x, y_<t), as in Ziegler et al.
    2019 and Stiennon et al. 2020: every response token gets −β · (logprobs − ref_logprobs), and the RM score,
    which judges the whole response, is added once at the last real response token (the last index where the
    mask is 1). With γ = 1 the return from the first token is then exactly the Eq. 2 objective for that sample.

    scores (B,), logprobs / ref_logprobs / response_mask (B, T), kl_coef = β (paper: 0.02, App. C.3).
    Returns (rewards, kl), both (B, T) and zero where the mask is 0. A row with an all-zero mask gets nothing.
    `kl` is the per-token log-ratio sample; its row sum is the sample estimate of KL(π_RL || π_SFT).
    """
    mask = response_mask.to(logprobs.dtype)  # (B, T)
    kl = (logprobs - ref_logprobs) * mask  # (B, T)
    rewards = -kl_coef * kl  # (B, T)
    T = mask.shape[1]
    positions = torch.arange(T, device=mask.device)  # (T,)
    # Index of the last real token: the largest position with mask 1 (0 for an empty row, masked out below).
    last = torch.where(mask > 0, positions, -1).amax(dim=1).clamp(min=0)  # (B,)
    has_tokens = (mask.sum(dim=1) > 0).to(rewards.dtype)  # (B,)
    rewards = rewards.scatter_add(1, last[:, None], (scores.to(rewards.dtype) * has_tokens)[:, None])  # (B, T)
    return rewards, kl


def adaptive_kl_coef(kl_coef: float, kl: float, target: float, n_episodes: int, horizon: int,
                     min_coef: float = 0.0) -> float:
    """β for the next iteration from the KL the last one reached (Ziegler et al. 2019, §2.2 "adaptive KL"):

        e_t = clip(KL_t / KL_target − 1, −0.2, 0.2),    K_β = n_episodes / horizon
        β_{t+1} = max(min_coef, β_t · (1 + K_β · e_t))

    (lm-human-preferences' AdaptiveKLController, with its horizon of 10 000 episodes). The clip bounds the step, so
    one odd batch cannot move β far; over many iterations β settles where the rollouts' KL stays near the target.
    `min_coef` is igpt's floor: a short run starts at KL 0, far below any target, and without a floor its first
    iterations would drive β toward 0 just before the KL needs it (ppo.py passes ppo.kl_coef, so the controller
    only ever raises β above the configured price). kl: the batch mean of the sequence KL (nats) measured with β_t;
    n_episodes: the episodes that batch held."""
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return max(min_coef, kl_coef * (1.0 + error * n_episodes / horizon))


@torch.no_grad()
def gae(rewards: Tensor, values: Tensor, response_mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalized Advantage Estimation (Schulman et al. 2016, Eq. 16), backwards over the T response tokens.

        δ_t = r_t + γ · V_{t+1} − V_t
        A_t = Σ_l (γλ)^l · δ_{t+l} = δ_t + γλ · A_{t+1}
        returns_t = A_t + V_t                   (the λ-return, the value head's regression target)

    The episode ends at the last real token: the value beyond it is 0 (it is a terminal state, the reward has
    been paid) and padding after it must leak neither values nor rewards. Masking values, rewards and the running
    A_{t+1} with the mask does exactly that, for rows that end at different lengths. The mask is assumed to be a
    run of ones per row (a response that stops at EOS). InstructGPT uses γ = 1, λ = 0.95.

    rewards, values, response_mask (B, T) -> (advantages, returns), both (B, T), zero where the mask is 0.
    Runs under no_grad: advantages and returns are targets, constants for the PPO update.
    """
    mask = response_mask.to(values.dtype)  # (B, T)
    values = values * mask  # (B, T)
    rewards = rewards * mask  # (B, T)
    B, T = values.shape
    advantages = torch.zeros_like(values)  # (B, T)
    next_value = torch.zeros(B, dtype=values.dtype, device=values.device)  # (B,)  V_{t+1}; 0 past the end
    next_adv = torch.zeros_like(next_value)  # (B,)  A_{t+1}
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        next_adv = (delta + gamma * lam * next_adv) * mask[:, t]  # (B,)  0 on padding: nothing flows back through it
        advantages[:, t] = next_adv
        next_value = values[:, t]
    returns = (advantages + values) * mask  # (B, T)
    return advantages, returns


# ----------------------------------------------------------------------------------------------------------------
# PPO losses (Schulman et al. 2017)


def policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, response_mask: Tensor, cliprange: float
) -> tuple[Tensor, dict]:
    """PPO clipped surrogate (Schulman et al. 2017, Eq. 7), negated to be minimised, per token.

        L^CLIP = E_t[ min(ρ_t · A_t, clip(ρ_t, 1 − ε, 1 + ε) · A_t) ],   ρ_t = π(y_t) / π_old(y_t)
        loss   = masked mean of max(−A_t · ρ_t, −A_t · clip(ρ_t, 1 − ε, 1 + ε))

    The min (max of the negatives) is a pessimistic bound: the policy gains nothing by moving ρ outside
    [1 − ε, 1 + ε] in the direction the advantage favours, so those tokens get no gradient.

    logprobs (B, T) from the current policy (with grad), old_logprobs (B, T) from the rollout policy,
    advantages (B, T) (usually whitened), cliprange = ε (paper: 0.2).
    Stats (floats): clipfrac = share of tokens where the clipped branch is active; approx_kl = masked mean of
    0.5 · (logprobs − old_logprobs)^2, a low-variance estimate of KL(π_old || π) for small steps; ratio_mean.
    """
    log_ratio = logprobs - old_logprobs  # (B, T)
    ratio = torch.exp(log_ratio)  # (B, T)  ρ
    pg_unclipped = -advantages * ratio  # (B, T)
    pg_clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)  # (B, T)
    loss = masked_mean(torch.maximum(pg_unclipped, pg_clipped), response_mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((pg_clipped > pg_unclipped).float(), response_mask).item(),
            "approx_kl": masked_mean(0.5 * log_ratio**2, response_mask).item(),
            "ratio_mean": masked_mean(ratio, response_mask).item(),
        }
    return loss, stats


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, response_mask: Tensor, cliprange_value: float
) -> tuple[Tensor, dict]:
    """Clipped value loss (the PPO2 variant of OpenAI baselines, used by Ziegler et al. 2019 and most RLHF code).

        V_clipped = old_values + clamp(values − old_values, −c, c)
        loss      = 0.5 · masked mean of max((V − R)^2, (V_clipped − R)^2)

    Like the policy clip, it keeps the value head from moving far from its rollout-time prediction in one update;
    the max makes it pessimistic. values (B, T) with grad, old_values / returns (B, T) constants.
    Stats: vf_clipfrac = share of tokens where the clipped error is the larger one (the gradient is cut there).
    """
    values_clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)  # (B, T)
    vf_unclipped = (values - returns) ** 2  # (B, T)
    vf_clipped = (values_clipped - returns) ** 2  # (B, T)
    loss = 0.5 * masked_mean(torch.maximum(vf_unclipped, vf_clipped), response_mask)
    with torch.no_grad():
        stats = {"vf_clipfrac": masked_mean((vf_clipped > vf_unclipped).float(), response_mask).item()}
    return loss, stats


# ----------------------------------------------------------------------------------------------------------------
# Token-level helpers on logits


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of softmax(logits) at every position: (B, T, V) -> (B, T), H = −Σ_v p_v · log p_v.

    log p is clamped to the dtype's smallest finite value so that −inf logits (banned tokens) give 0 · finite = 0
    instead of 0 · −inf = nan, in the value and in the gradient.
    """
    logp = F.log_softmax(logits, dim=-1)  # (B, T, V)
    return -(logp.exp() * logp.clamp(min=torch.finfo(logp.dtype).min)).sum(dim=-1)  # (B, T)


def logprobs_from_logits(logits: Tensor, labels: Tensor) -> Tensor:
    """log π(label | context) per position: (B, T, V), (B, T) -> (B, T).

    log_softmax then gather: one (B, T, V) temporary, never a softmax and a log of it (which underflows), and
    no one-hot. The caller aligns logits and labels (logits[:, t] must be the prediction for labels[:, t]).
    """
    logp = F.log_softmax(logits, dim=-1)  # (B, T, V)
    return logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # (B, T)


def ptx_loss(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """The pretraining term of InstructGPT Eq. 2 as a loss: mean next-token negative log-likelihood over the mask.

    Eq. 2 adds γ · E_{x ~ D_pretrain}[log π_RL(x)] to the objective being maximised, so the loss added to the PPO
    loss is ptx_coef · ptx_loss (ptx_coef = γ, paper: 27.8). The PPO-ptx update accumulates both gradients, the
    PPO one on rollout tokens and this one on a pretraining batch, into the same optimizer step (App. C.3; see
    `ppo_ptx_loss`). It keeps the policy from regressing on public NLP tasks (the "alignment tax", §4.2).

    logits (B, T, V) from a forward pass on the pretraining tokens `labels` (B, T); the shift is done here:
    logits[:, :-1] predicts labels[:, 1:]. mask (B, T) is aligned to labels: mask[:, t] = 1 if labels[:, t] is a
    real target, so mask[:, 0] is never used (the first token has no prediction).
    """
    if mask.shape != labels.shape:
        raise ValueError(f"ptx_loss: mask {tuple(mask.shape)} must have the shape of labels {tuple(labels.shape)}")
    logp = logprobs_from_logits(logits[:, :-1], labels[:, 1:])  # (B, T-1)
    return -masked_mean(logp, mask[:, 1:])


def ppo_ptx_loss(pg_loss: Tensor, vf_loss: Tensor, ptx: Tensor, vf_coef: float, ptx_coef: float) -> Tensor:
    """Total loss of one PPO-ptx minibatch when policy, value head and pretraining term share one backward.

        loss = pg_loss + vf_coef · vf_loss + ptx_coef · ptx

    One `loss.backward()` then accumulates the three gradients into the same optimizer step (InstructGPT App. C.3
    mixes the pretraining gradient into the PPO gradient this way). With a separate value model (the paper
    initialises it from the RM) vf_coef only rescales that model's gradient; with a shared trunk it also trades
    the value fit against the policy. Pass ptx = 0 and ptx_coef = 0 for plain PPO.
    """
    return pg_loss + vf_coef * vf_loss + ptx_coef * ptx


# ----------------------------------------------------------------------------------------------------------------
# Diagnostics and weight averaging


@torch.no_grad()
def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> float:
    """1 − Var[R − V] / Var[R] over the masked positions: how much of the return the value head predicts.

    1 = perfect, 0 = no better than predicting the mean, < 0 = worse. nan when Var[R] = 0 (nothing to explain).
    """
    var_returns = masked_var(returns, mask)
    if var_returns == 0:
        return float("nan")
    return (1.0 - masked_var(returns - values, mask) / var_returns).item()


@torch.no_grad()
def ema_update(ema_params: Iterable[Tensor], params: Iterable[Tensor], decay: float) -> None:
    """In place: ema ← decay · ema + (1 − decay) · p, parameter by parameter (InstructGPT App. C.3: EMA decay 0.992).

    The evaluated PPO model is the exponential moving average of the trained weights, which smooths the noise of
    the last updates. Call after every optimizer step; the two iterables must list matching parameters in order.
    """
    for ema, p in zip(ema_params, params, strict=True):
        # lerp: ema + (1 − decay) · (p − ema) = decay · ema + (1 − decay) · p
        ema.lerp_(p.detach().to(ema.dtype), 1.0 - decay)
