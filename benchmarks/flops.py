"""Distance to the machine's limit: FLOPs from the model's shapes, this machine's matmul peak, one SFT step, and
generation tokens/s with the variants that might speed it up. Run by benchmarks/run.py (project venv).

    python benchmarks/flops.py RUN_DIR OUT_JSON

FLOPs are counted the usual way (2 per multiply-add; backward = 2 x forward): per token and layer the q, k, v, o
projections (4·d²), the SwiGLU MLP (3·d·ff), and attention over the positions the kernel computes (2·2·d·ctx,
the full padded width: SDPA with a mask does not skip the masked half); plus the unembedding (d·V) where logits
are needed. Embedding lookups, norms and softmaxes are left out (well under 1% at these shapes).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch


def matmul_peak(sizes=(256, 512, 1024, 2048), repeats=5) -> dict:
    """Best fp32 GFLOP/s of a square matmul at each size (best of `repeats`); the peak is the best size's."""
    out = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(max(1, 2 ** 28 // n ** 3)):
                torch.mm(a, b)
            best = min(best, (time.perf_counter() - t) / max(1, 2 ** 28 // n ** 3))
        out[n] = 2 * n ** 3 / best / 1e9
    return {"gflops_by_size": out, "peak_gflops": max(out.values())}


def flops_per_token(c, ctx: int, logits: bool) -> float:
    """Forward FLOPs of one token with `ctx` positions in view, from a Llama-style config `c`."""
    d, L, ff, V = c.hidden_size, c.num_hidden_layers, c.intermediate_size, c.vocab_size
    kv = c.num_key_value_heads / c.num_attention_heads
    per_layer = 2 * (2 * d * d + 2 * d * d * kv + 3 * d * ff) + 2 * 2 * d * ctx
    return L * per_layer + (2 * d * V if logits else 0)


def ppo_iteration_flops(c, r: dict) -> dict:
    """FLOPs of each phase of one igpt PPO(-ptx) iteration from its recorded shapes (benchmarks/ppo_igpt.py)."""
    B, Tq, Tr, mb = r["batch"], r["query_width"], r["response_width"], r["mini_batch"]
    T = Tq + Tr
    # generation: the prompt once, then one token per step for every row (finished rows are still computed)
    gen = B * Tq * flops_per_token(c, Tq, True) + sum(B * flops_per_token(c, Tq + t, True) for t in range(Tr))
    seq = B * T  # tokens of one pass over the batch
    score = seq * flops_per_token(c, T, False)  # the RM re-encodes the text: about the same length
    forward = seq * (2 * flops_per_token(c, T, True) + flops_per_token(c, T, False))  # policy, reference, value
    # update: forward + backward (3x) of policy and value on each minibatch, plus the ptx blocks on the policy
    steps = r["optimizer_steps"]
    update = 3 * steps * mb * T * (flops_per_token(c, T, True) + flops_per_token(c, T, False))
    if r.get("ptx_tokens"):
        update += 3 * r["ptx_tokens"] * flops_per_token(c, r["ptx_block"], True)
    return {"generate": gen, "score": score, "forward": forward, "update": update}


def sft_step(run_dir: Path, repeats: int = 5) -> dict:
    """Time forward + backward + AdamW step on one SFT batch (16 demonstrations, padded to the longest)."""
    from transformers import AutoModelForCausalLM

    from igpt import data, sft
    from igpt.config import config_from_run
    from igpt.pretrain import load_tokenizer

    cfg = config_from_run(run_dir)
    tok = load_tokenizer(run_dir / "sft")
    model = AutoModelForCausalLM.from_pretrained(run_dir / "sft").train()
    rows = sft.to_prompt_completion(data.load(cfg, "sft")["train"])
    texts = [p + c for p, c in zip(rows["prompt"], rows["completion"])][:cfg.sft.batch_size]
    enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=cfg.sft.max_length)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        loss = model(**enc, labels=enc["input_ids"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    B, T = enc["input_ids"].shape
    flops = 3 * B * T * flops_per_token(model.config, T, True)
    sec = statistics.median(times[1:])  # the first step pays one-off set-up
    return {"batch": B, "width": T, "seconds": sec, "flops": flops, "gflops": flops / sec / 1e9}


def generation(run_dir: Path, repeats: int = 3) -> dict:
    """Tokens/s of a PPO rollout (64 prompts, 48 new tokens, temperature 1) as igpt samples it, with a static KV
    cache, with torch.compile on top, and of batched evaluation sampling (256 prompts, batches of 32) with and
    without grouping prompts of similar length."""
    from igpt import data
    from igpt.config import config_from_run
    from igpt.generation import generate, generate_ids
    from igpt.hf import load_causal_lm
    from igpt.pretrain import load_tokenizer

    cfg = config_from_run(run_dir)
    tok = load_tokenizer(run_dir / "sft")
    model = load_causal_lm(run_dir / "sft").eval()
    prompts = list(data.load(cfg, "ppo_prompts")["train"]["prompt"])
    out = {}

    def rollout(name):
        times, toks = [], []
        for i in range(repeats + 1):
            torch.manual_seed(i)
            t = time.perf_counter()
            _, resp, mask = generate_ids(model, tok, prompts[64 * i:64 * (i + 1)], 48, 1.0)
            times.append(time.perf_counter() - t)
            toks.append(mask.sum().item())
        out[name] = {"seconds": statistics.median(times[1:]), "first_call": times[0],
                     "tokens_per_s": statistics.median(n / s for n, s in zip(toks[1:], times[1:]))}

    rollout("dynamic_cache")
    model.generation_config.cache_implementation = "static"
    rollout("static_cache")
    model.forward = torch.compile(model.forward, dynamic=False)
    try:
        rollout("static_cache_compiled")
    except Exception as e:  # noqa: BLE001 - a benchmark row, not a feature: report why it did not run
        out["static_cache_compiled"] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    model = load_causal_lm(run_dir / "sft").eval()
    evalp = prompts[:256]
    for name, order in (("eval_in_order", list(range(256))),
                        ("eval_by_length", sorted(range(256), key=lambda i: len(tok(evalp[i])["input_ids"])))):
        t = time.perf_counter()
        texts = generate(model, tok, [evalp[i] for i in order], 48, temperature=1.0, batch_size=32, progress=False)
        sec = time.perf_counter() - t
        out[name] = {"seconds": sec, "tokens_per_s": sum(len(tok(x)["input_ids"]) + 1 for x in texts) / sec}
    return out


def main() -> None:
    run_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    from transformers import AutoConfig

    res = {"threads": torch.get_num_threads(), "matmul": matmul_peak(), "sft_step": sft_step(run_dir),
           "generation": generation(run_dir)}
    res["matmul_after"] = matmul_peak()  # the peak again: the machine is shared, see how much it moved
    c = AutoConfig.from_pretrained(run_dir / "sft")
    res["model"] = {"hidden": c.hidden_size, "layers": c.num_hidden_layers, "ff": c.intermediate_size,
                    "vocab": c.vocab_size, "heads": c.num_attention_heads}
    out.write_text(json.dumps(res))
    print(json.dumps(res, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
