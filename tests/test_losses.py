"""igpt.losses against numbers worked out by hand (with `math`, never with the function under test)."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest
import torch
import torch.nn.functional as F

from igpt.losses import (
    adaptive_kl_coef,
    ema_update,
    entropy_from_logits,
    explained_variance,
    gae,
    kl_penalized_rewards,
    kwise_accuracy,
    kwise_ranking_loss,
    logprobs_from_logits,
    masked_mean,
    masked_var,
    masked_whiten,
    pairwise_loss,
    policy_loss,
    ppo_ptx_loss,
    ptx_loss,
    value_loss,
)


def softplus(x: float) -> float:
    """−log σ(−x) = log(1 + e^x); so −log σ(d) = softplus(−d)."""
    return math.log1p(math.exp(x))


def nls(d: float) -> float:
    """−log σ(d), by hand."""
    return softplus(-d)


def t(x, **kw) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, **kw)


def close(x: torch.Tensor, expected: list) -> bool:
    """x equals the nested list of hand numbers, to 1e-9."""
    return torch.allclose(x, t(expected), rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Reward-model losses


def test_kwise_k3_hand_value():
    # rewards [2, 1, 0], ranking [0, 1, 2]: pairs (0,1), (0,2), (1,2) with margins 1, 2, 1
    # loss = −(log σ(1) + log σ(2) + log σ(1)) / 3 = (0.313262 + 0.126928 + 0.313262) / 3 = 0.251151
    expected = (nls(1) + nls(2) + nls(1)) / 3
    assert expected == pytest.approx(0.251151, abs=1e-6)
    loss = kwise_ranking_loss(t([[2.0, 1.0, 0.0]]), torch.tensor([[0, 1, 2]]))
    assert loss.item() == pytest.approx(expected, abs=1e-9)


def test_kwise_ranking_not_slot_order():
    # ranking [2, 0, 1]: slot 1 is best, then slot 2, then slot 0. rewards [0, 3, 1]
    # pairs (w, l): (1,0) margin 3, (1,2) margin 2, (2,0) margin 1
    expected = (nls(3) + nls(2) + nls(1)) / 3
    loss = kwise_ranking_loss(t([[0.0, 3.0, 1.0]]), torch.tensor([[2, 0, 1]]))
    assert loss.item() == pytest.approx(expected, abs=1e-9)
    # the same rewards read in slot order would be a different (worse) loss: margins −3, −1, 2
    wrong = (nls(-3) + nls(-1) + nls(2)) / 3
    assert abs(loss.item() - wrong) > 0.5


def test_kwise_ties_give_no_pair():
    # ranking [0, 0, 1]: slots 0 and 1 tie -> only (0,2) margin 2−0.5 and (1,2) margin 1−0.5, P = 2
    rewards = t([[2.0, 1.0, 0.5]])
    expected = (nls(1.5) + nls(0.5)) / 2
    loss = kwise_ranking_loss(rewards, torch.tensor([[0, 0, 1]]))
    assert loss.item() == pytest.approx(expected, abs=1e-9)
    # had the tie counted as a pair (0,1), the value would include nls(1) with P = 3
    assert abs(loss.item() - (nls(1.5) + nls(0.5) + nls(1)) / 3) > 1e-3


def test_kwise_masked_slots_give_no_pair():
    # K = 4 slots, the prompt has only 2 real completions; slot 2, 3 padded with junk rewards and ranks.
    rewards = t([[1.0, 3.0, -50.0, 70.0]])
    ranking = torch.tensor([[1, 0, 2, 3]])
    mask = torch.tensor([[True, True, False, False]])
    # one pair: slot 1 beats slot 0, margin 3 − 1 = 2
    loss = kwise_ranking_loss(rewards, ranking, mask)
    assert loss.item() == pytest.approx(nls(2.0), abs=1e-9)
    acc = kwise_accuracy(rewards, ranking, mask)
    assert acc.item() == pytest.approx(1.0)  # without the mask slot 3 (70) beating 0,1,2 would be wrong


def test_kwise_mean_over_prompts_not_pairs():
    # prompt 0 (K=3, 3 pairs): rewards [2, 1, 0] ranked in order -> (nls(1) + nls(2) + nls(1)) / 3
    # prompt 1 (2 real, 1 pair): rewards [0, 1, pad] ranked [0, 1] -> margin −1 -> nls(−1)
    # loss = mean of the two per-prompt losses (each prompt weighs 1, not each pair)
    rewards = t([[2.0, 1.0, 0.0], [0.0, 1.0, 9.0]])
    ranking = torch.tensor([[0, 1, 2], [0, 1, 2]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    p0 = (nls(1) + nls(2) + nls(1)) / 3
    p1 = nls(-1)
    loss = kwise_ranking_loss(rewards, ranking, mask)
    assert loss.item() == pytest.approx((p0 + p1) / 2, abs=1e-9)
    pooled = (nls(1) + nls(2) + nls(1) + nls(-1)) / 4
    assert abs(loss.item() - pooled) > 1e-2
    # accuracy pools pairs: 3 right in prompt 0, 0 of 1 right in prompt 1 -> 3/4
    assert kwise_accuracy(rewards, ranking, mask).item() == pytest.approx(0.75)


def test_kwise_prompt_without_pairs_contributes_nothing():
    # prompt 1 is all ties -> no pair; the loss is prompt 0's alone
    rewards = t([[2.0, 0.0], [5.0, -5.0]])
    ranking = torch.tensor([[0, 1], [0, 0]])
    assert kwise_ranking_loss(rewards, ranking).item() == pytest.approx(nls(2.0), abs=1e-9)


def test_kwise_no_pairs_zero_with_grad():
    rewards = t([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    loss = kwise_ranking_loss(rewards, torch.tensor([[0, 0], [1, 1]]))
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert torch.equal(rewards.grad, torch.zeros(2, 2, dtype=torch.float64))
    assert math.isnan(kwise_accuracy(rewards.detach(), torch.tensor([[0, 0], [1, 1]])).item())


def test_kwise_equals_pairwise_on_expanded_pairs():
    g = torch.Generator().manual_seed(0)
    B, K = 3, 4
    rewards = torch.randn(B, K, generator=g, dtype=torch.float64)
    ranking = torch.stack([torch.randperm(K, generator=g) for _ in range(B)])
    ranking[2, 1] = ranking[2, 0]  # one tie in prompt 2 -> 5 pairs there instead of 6
    per_prompt = []
    for b in range(B):
        chosen, rejected = [], []
        for i, j in itertools.permutations(range(K), 2):
            if ranking[b, i] < ranking[b, j]:
                chosen.append(rewards[b, i])
                rejected.append(rewards[b, j])
        assert len(chosen) == (5 if b == 2 else 6)
        per_prompt.append(pairwise_loss(torch.stack(chosen), torch.stack(rejected)))
    expected = torch.stack(per_prompt).mean()
    assert kwise_ranking_loss(rewards, ranking).item() == pytest.approx(expected.item(), abs=1e-12)


def test_kwise_gradient_by_hand():
    # K = 2, rewards [1, 0], slot 0 best: loss = −log σ(r0 − r1)
    # d loss / d r0 = −(1 − σ(1)) = −σ(−1) = −0.268941;  d loss / d r1 = +0.268941
    rewards = t([[1.0, 0.0]], requires_grad=True)
    kwise_ranking_loss(rewards, torch.tensor([[0, 1]])).backward()
    s = 1 / (1 + math.exp(1.0))
    assert rewards.grad[0, 0].item() == pytest.approx(-s, abs=1e-9)
    assert rewards.grad[0, 1].item() == pytest.approx(s, abs=1e-9)


def test_kwise_accuracy_strict_and_reversed():
    # prompt 0 ordered right (3/3); prompt 1 reversed (0/3); prompt 2 rewards equal on the pair (strict: wrong)
    rewards = t([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [1.0, 1.0, 0.0]])
    ranking = torch.tensor([[0, 1, 2], [0, 1, 2], [0, 1, 1]])
    # prompt 2 pairs: (0,1) 1 > 1 false, (0,2) 1 > 0 true; slots 1, 2 tie -> 2 pairs
    # total = (3 + 0 + 1) / (3 + 3 + 2) = 0.5
    assert kwise_accuracy(rewards, ranking).item() == pytest.approx(0.5)


def test_pairwise_loss_hand():
    # margins 1 − 0 = 1 and 0 − 2 = −2: (log(1 + e^−1) + log(1 + e^2)) / 2 = (0.313262 + 2.126928) / 2
    chosen = t([1.0, 0.0], requires_grad=True)
    loss = pairwise_loss(chosen, t([0.0, 2.0]))
    assert loss.item() == pytest.approx((0.313262 + 2.126928) / 2, abs=1e-6)
    loss.backward()
    # d/d chosen_i = −σ(−margin_i) / 2
    assert chosen.grad[0].item() == pytest.approx(-1 / (1 + math.e) / 2, abs=1e-9)
    assert chosen.grad[1].item() == pytest.approx(-1 / (1 + math.exp(-2)) / 2, abs=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Masked statistics


def test_masked_mean_and_var_hand():
    x = t([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, -50.0, 7.0]])
    mask = t([[1, 1, 1, 0], [1, 1, 0, 1]])
    real = [1.0, 2.0, 3.0, 4.0, 5.0, 7.0]  # mean 22 / 6
    assert masked_mean(x, mask).item() == pytest.approx(22 / 6)
    # per row: (1 + 2 + 3) / 3 = 2, (4 + 5 + 7) / 3 = 16 / 3
    assert masked_mean(x, mask, dim=1).tolist() == pytest.approx([2.0, 16 / 3])
    assert masked_var(x, mask).item() == pytest.approx(statistics.variance(real))  # / (n − 1)
    assert masked_var(x, mask, unbiased=False).item() == pytest.approx(statistics.pvariance(real))  # / n


def test_masked_whiten_ignores_masked_positions():
    x = t([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, -50.0, 7.0]])
    mask = t([[1, 1, 1, 0], [1, 1, 0, 1]])
    real = [1.0, 2.0, 3.0, 4.0, 5.0, 7.0]
    mu, sd = statistics.mean(real), statistics.stdev(real)
    w = masked_whiten(x, mask)
    assert w[0, 3].item() == 0.0 and w[1, 2].item() == 0.0
    assert w[0, 0].item() == pytest.approx((1.0 - mu) / sd, abs=1e-6)
    assert w[1, 3].item() == pytest.approx((7.0 - mu) / sd, abs=1e-6)
    vals = w[mask.bool()].tolist()
    assert statistics.mean(vals) == pytest.approx(0.0, abs=1e-9)
    assert statistics.variance(vals) == pytest.approx(1.0, abs=1e-6)
    # shift_mean=False keeps the mean, rescales only
    w2 = masked_whiten(x, mask, shift_mean=False)
    assert w2[0, 0].item() == pytest.approx((1.0 - mu) / sd + mu, abs=1e-6)
    assert w2[0, 3].item() == 0.0


# ---------------------------------------------------------------------------------------------------------------
# KL-shaped rewards


def test_kl_penalized_rewards_hand():
    kl_coef = 0.1
    logprobs = t([[-1.0, -2.0, -0.5, -9.0], [-1.0, -3.0, -3.0, -3.0], [-1.0, -1.0, -1.0, -1.0]])
    ref = t([[-1.5, -1.0, -0.5, 0.0], [-2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    mask = t([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])  # row 1 ended after 1 token; row 2 has none
    scores = t([2.0, -1.0, 5.0])
    rewards, kl = kl_penalized_rewards(scores, logprobs, ref, mask, kl_coef)
    # row 0: log-ratios 0.5, −1.0, 0.0, (masked) -> kl [0.5, −1, 0, 0]
    #   rewards −0.1·kl = [−0.05, 0.1, 0, 0], score 2 at index 2 (last real token) -> [−0.05, 0.1, 2.0, 0]
    # row 1: log-ratio 1.0 at index 0 -> kl [1, 0, 0, 0]; rewards [−0.1 + (−1), 0, 0, 0] = [−1.1, 0, 0, 0]
    # row 2: nothing at all, not even the score
    assert close(kl, [[0.5, -1.0, 0.0, 0.0], [1.0, 0, 0, 0], [0, 0, 0, 0]])
    assert close(rewards, [[-0.05, 0.1, 2.0, 0.0], [-1.1, 0, 0, 0], [0, 0, 0, 0]])
    # the return with γ = 1 is Eq. 2 for the sample: score − β · Σ log-ratio = 2 − 0.1 · (0.5 − 1) = 2.05
    assert rewards[0].sum().item() == pytest.approx(2.05)


def test_kl_penalized_rewards_bool_mask_and_full_row():
    # a row whose last token is the last column; the mask may come as bool
    rewards, _ = kl_penalized_rewards(t([3.0]), t([[0.0, 0.0]]), t([[0.0, 0.0]]), torch.tensor([[True, True]]), 0.5)
    assert rewards.tolist() == [[0.0, 3.0]]


def test_adaptive_kl_coef_hand():
    # β 0.1, 64 episodes over a horizon of 640: K_β = 0.1. KL 5.5 against a target of 5: e = 0.1, β × 1.01
    assert adaptive_kl_coef(0.1, 5.5, 5.0, 64, 640) == pytest.approx(0.101)
    # below target: KL 4.5, e = -0.1, β × 0.99
    assert adaptive_kl_coef(0.1, 4.5, 5.0, 64, 640) == pytest.approx(0.099)
    # the error is clipped to ±0.2: KL 100 moves β as KL 6 does (× 1.02), KL 0 or below as KL 4 does (× 0.98)
    assert adaptive_kl_coef(0.1, 100.0, 5.0, 64, 640) == pytest.approx(0.102)
    assert adaptive_kl_coef(0.1, 0.0, 5.0, 64, 640) == pytest.approx(0.098)
    assert adaptive_kl_coef(0.1, -1.0, 5.0, 64, 640) == pytest.approx(0.098)
    # on target β stays; a 10x longer horizon moves it 10x less
    assert adaptive_kl_coef(0.1, 5.0, 5.0, 64, 640) == pytest.approx(0.1)
    assert adaptive_kl_coef(0.1, 6.0, 5.0, 64, 6400) == pytest.approx(0.1002)
    # the floor: below target β falls, but not under min_coef; above target the floor does not hold it back
    assert adaptive_kl_coef(0.1, 0.0, 5.0, 64, 640, min_coef=0.099) == pytest.approx(0.099)
    assert adaptive_kl_coef(0.1, 4.5, 5.0, 64, 640, min_coef=0.05) == pytest.approx(0.099)
    assert adaptive_kl_coef(0.1, 100.0, 5.0, 64, 640, min_coef=0.1) == pytest.approx(0.102)


# ---------------------------------------------------------------------------------------------------------------
# GAE


def test_gae_three_steps_gamma1_lam095():
    # rewards [0, 0, 1], values [0.5, 0.4, 0.3], γ = 1, λ = 0.95, V beyond the end = 0
    # δ2 = 1 + 0 − 0.3 = 0.7                 A2 = 0.7
    # δ1 = 0 + 0.3 − 0.4 = −0.1              A1 = −0.1 + 0.95 · 0.7 = 0.565
    # δ0 = 0 + 0.4 − 0.5 = −0.1              A0 = −0.1 + 0.95 · 0.565 = 0.43675
    # returns = A + V = [0.93675, 0.965, 1.0]
    adv, ret = gae(t([[0.0, 0.0, 1.0]]), t([[0.5, 0.4, 0.3]]), t([[1, 1, 1]]), gamma=1.0, lam=0.95)
    assert adv.tolist()[0] == pytest.approx([0.43675, 0.565, 0.7])
    assert ret.tolist()[0] == pytest.approx([0.93675, 0.965, 1.0])


def test_gae_gamma_and_lambda_placement():
    # same sequence, γ = 0.5, λ = 0.5 (γλ = 0.25)
    # δ2 = 1 − 0.3 = 0.7                     A2 = 0.7
    # δ1 = 0 + 0.5 · 0.3 − 0.4 = −0.25       A1 = −0.25 + 0.25 · 0.7 = −0.075
    # δ0 = 0 + 0.5 · 0.4 − 0.5 = −0.3        A0 = −0.3 + 0.25 · (−0.075) = −0.31875
    adv, _ = gae(t([[0.0, 0.0, 1.0]]), t([[0.5, 0.4, 0.3]]), t([[1, 1, 1]]), gamma=0.5, lam=0.5)
    assert adv.tolist()[0] == pytest.approx([-0.31875, -0.075, 0.7])


def test_gae_padding_after_end_does_not_leak():
    # row 0: the 3-step sequence above, padded with junk values / rewards
    # row 1: a 1-step episode: A0 = r0 − V0 = 2 − 0.5 = 1.5, return 2
    # row 2: junk before the response (mask 0 at index 0), then the last two steps of row 0: A = [0, 0.565, 0.7]
    #        (the masked index 0 must stay 0 even though V_1 = 0.4 follows it)
    rewards = t([[0.0, 0.0, 1.0, 5.0, 5.0], [2.0, 7.0, 7.0, 7.0, 7.0], [3.0, 0.0, 1.0, 4.0, 4.0]])
    values = t([[0.5, 0.4, 0.3, 9.0, 9.0], [0.5, 9.0, 9.0, 9.0, 9.0], [8.0, 0.4, 0.3, 9.0, 9.0]])
    mask = t([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 1, 1, 0, 0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.95)
    assert close(adv, [[0.43675, 0.565, 0.7, 0, 0], [1.5, 0, 0, 0, 0], [0, 0.565, 0.7, 0, 0]])
    assert close(ret, [[0.93675, 0.965, 1.0, 0, 0], [2.0, 0, 0, 0, 0], [0, 0.965, 1.0, 0, 0]])


# ---------------------------------------------------------------------------------------------------------------
# PPO losses


def test_policy_loss_clip_cases_hand():
    eps = 0.2
    # token  A    ρ     −Aρ    −A·clip(ρ)      max   clipped branch active?
    #  a    +1   1.1   −1.1   −1.1            −1.1   no  (inside the range)
    #  b    +1   1.5   −1.5   −1.2            −1.2   yes (A > 0, ρ above 1 + ε)
    #  c    −1   0.5   +0.5   +0.8            +0.8   yes (A < 0, ρ below 1 − ε)
    #  d    −2   1.5   +3.0   +2.4            +3.0   no  (A < 0, ρ above: the unclipped term is the pessimistic one)
    #  e    +1   0.5   −0.5   −0.8            −0.5   no  (A > 0, ρ below)
    #  f   100   3.0   masked out
    # loss = (−1.1 − 1.2 + 0.8 + 3.0 − 0.5) / 5 = 0.2, clipfrac = 2 / 5
    ratios = [1.1, 1.5, 0.5, 1.5, 0.5, 3.0]
    adv = t([[1.0, 1.0, -1.0, -2.0, 1.0, 100.0]])
    old = t([[-1.0, -2.0, -0.5, -1.0, -3.0, -1.0]])
    logprobs = (old + t([[math.log(r) for r in ratios]])).requires_grad_()
    mask = t([[1, 1, 1, 1, 1, 0]])
    loss, stats = policy_loss(logprobs, old, adv, mask, eps)
    assert loss.item() == pytest.approx(0.2, abs=1e-9)
    assert stats["clipfrac"] == pytest.approx(0.4)
    assert stats["ratio_mean"] == pytest.approx((1.1 + 1.5 + 0.5 + 1.5 + 0.5) / 5)
    kl = sum(0.5 * math.log(r) ** 2 for r in ratios[:5]) / 5
    assert stats["approx_kl"] == pytest.approx(kl)
    assert all(isinstance(v, float) for v in stats.values())
    # gradient: d(−Aρ)/d logprob = −Aρ on unclipped tokens, 0 on clipped and masked ones, all / 5
    loss.backward()
    assert logprobs.grad.tolist()[0] == pytest.approx([-1.1 / 5, 0.0, 0.0, 3.0 / 5, -0.5 / 5, 0.0])


def test_value_loss_clipping_hand():
    c = 0.2
    # token  V    old   R    V − old   V_clip   (V − R)^2   (V_clip − R)^2   max    clipped?
    #  a    1.0  0.9   1.5   0.1      1.0      0.25        0.25             0.25   no (inside)
    #  b    2.0  1.0   0.0   1.0      1.2      4.0         1.44             4.0    no
    #  c    2.0  1.0   3.0   1.0      1.2      1.0         3.24             3.24   yes
    #  d    junk, masked
    # loss = 0.5 · (0.25 + 4 + 3.24) / 3 = 1.248333..., vf_clipfrac = 1/3
    values = t([[1.0, 2.0, 2.0, 50.0]], requires_grad=True)
    old = t([[0.9, 1.0, 1.0, 0.0]])
    returns = t([[1.5, 0.0, 3.0, -50.0]])
    loss, stats = value_loss(values, old, returns, t([[1, 1, 1, 0]]), c)
    assert loss.item() == pytest.approx(0.5 * (0.25 + 4.0 + 3.24) / 3)
    assert stats["vf_clipfrac"] == pytest.approx(1 / 3)
    # gradient: 0.5 · 2 (V − R) / 3 on the unclipped branch; the clipped branch saturates -> 0
    loss.backward()
    assert values.grad.tolist()[0] == pytest.approx([(1.0 - 1.5) / 3, (2.0 - 0.0) / 3, 0.0, 0.0])


def test_explained_variance_hand():
    returns = t([[1.0, 2.0, 3.0, 4.0, 99.0]])
    mask = t([[1, 1, 1, 1, 0]])
    assert explained_variance(returns.clone(), returns, mask) == pytest.approx(1.0)
    # V = 0 -> R − V = R -> 1 − 1 = 0
    assert explained_variance(torch.zeros_like(returns), returns, mask) == pytest.approx(0.0)
    # R − V = [0.5, 0, −0.5, 0]: var = 0.5 / 3; Var[R] = 5 / 3 -> 1 − 0.1 = 0.9
    values = t([[0.5, 2.0, 3.5, 4.0, -7.0]])
    assert explained_variance(values, returns, mask) == pytest.approx(0.9)
    assert math.isnan(explained_variance(values, t([[2.0, 2.0, 2.0, 2.0, 5.0]]), mask))


# ---------------------------------------------------------------------------------------------------------------
# Logits helpers and the pretraining term


def test_entropy_from_logits_hand():
    # uniform over 2 -> ln 2; p = [1/4, 3/4] (logits 0, ln 3) -> −(¼ ln ¼ + ¾ ln ¾) = 0.562335
    # [0, 0, −inf] -> a banned token changes nothing: ln 2, no nan
    logits = t([[[0.0, 0.0, -math.inf], [0.0, math.log(3.0), -math.inf]]], requires_grad=True)
    h = entropy_from_logits(logits)
    assert h.shape == (1, 2)
    assert h.tolist()[0] == pytest.approx([math.log(2), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))])
    h.sum().backward()
    assert torch.isfinite(logits.grad).all()
    # dH/dl_i = −p_i (log p_i + H); uniform over 2 -> 0
    assert logits.grad[0, 0].tolist() == pytest.approx([0.0, 0.0, 0.0])


def test_logprobs_from_logits_hand():
    # log softmax([1, 2, 3])[2] = 3 − log(e + e^2 + e^3);   [0, 0] picks ln ½
    logits = t([[[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]]])
    lp = logprobs_from_logits(logits, torch.tensor([[2, 0]]))
    z = math.log(math.e + math.e**2 + math.e**3)
    assert lp.tolist()[0] == pytest.approx([3 - z, 0.0 - math.log(2 + math.exp(5))])


def test_ptx_loss_hand():
    # labels [7→0, 1, 0] over vocab 2; logits[:, 0] predicts labels[:, 1] = 1, logits[:, 1] predicts labels[:, 2] = 0
    # position 0: logits [0, ln 3]  -> p(1) = 3/4 -> nll = −ln ¾ = 0.287682
    # position 1: logits [ln 4, 0]  -> p(0) = 4/5 -> nll = −ln ⅘ = 0.223144
    # the last position's logits predict nothing (junk)
    logits = t([[[0.0, math.log(3.0)], [math.log(4.0), 0.0], [100.0, -100.0]]], requires_grad=True)
    labels = torch.tensor([[0, 1, 0]])
    loss = ptx_loss(logits, labels, t([[1, 1, 1]]))
    assert loss.item() == pytest.approx((-math.log(0.75) - math.log(0.8)) / 2)
    ce = F.cross_entropy(logits[0, :2], labels[0, 1:])  # the same thing, PyTorch's way
    assert loss.item() == pytest.approx(ce.item())
    # mask aligned to labels: mask[:, 2] = 0 drops position 1's prediction; mask[:, 0] is never used
    assert ptx_loss(logits, labels, t([[0, 1, 0]])).item() == pytest.approx(-math.log(0.75))
    loss.backward()
    # d nll / d logits = softmax − onehot, / 2 positions: position 0 -> ([¼, ¾] − [0, 1]) / 2
    assert logits.grad[0, 0].tolist() == pytest.approx([0.125, -0.125])
    assert logits.grad[0, 2].tolist() == pytest.approx([0.0, 0.0])
    with pytest.raises(ValueError):
        ptx_loss(logits, labels, t([[1, 1]]))


def test_ppo_ptx_loss_combines_and_backprops():
    pg = t(1.0, requires_grad=True)
    vf = t(2.0, requires_grad=True)
    ptx = t(3.0, requires_grad=True)
    total = ppo_ptx_loss(pg, vf, ptx, vf_coef=0.5, ptx_coef=27.8)
    assert total.item() == pytest.approx(1.0 + 0.5 * 2.0 + 27.8 * 3.0)
    total.backward()
    assert (pg.grad.item(), vf.grad.item(), ptx.grad.item()) == pytest.approx((1.0, 0.5, 27.8))


# ---------------------------------------------------------------------------------------------------------------
# EMA


def test_ema_update_hand():
    # 0.992 · 1 + 0.008 · 3 = 1.016;  0.992 · 2 + 0.008 · 0 = 1.984;  a (2,) tensor: 0.992 · [0, 10] + 0.008 · [1, 0]
    ema = [torch.nn.Parameter(t(1.0)), torch.nn.Parameter(t(2.0)), t([0.0, 10.0])]
    params = [t(3.0, requires_grad=True), t(0.0), t([1.0, 0.0])]
    ema_update(ema, params, decay=0.992)
    assert ema[0].item() == pytest.approx(1.016)
    assert ema[1].item() == pytest.approx(1.984)
    assert ema[2].tolist() == pytest.approx([0.008, 9.92])
    assert params[0].item() == 3.0  # the trained weights are untouched
    assert ema[0].grad is None and ema[0].grad_fn is None
    with pytest.raises(ValueError):  # mismatched parameter lists are an error, not a silent partial update
        ema_update(ema, params[:2], decay=0.992)
