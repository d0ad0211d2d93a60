"""Sampling from a causal LM in the one prompt format: batched, left-padded, cut at the first EOS.

Every later stage samples through `generate`: SFT's evaluation, the K completions the labelers rank, PPO's
rollouts (through `generate_ids`, which also returns the token ids) and the evaluation of each policy.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from igpt.io import write_json
from igpt.prompting import clean_response, format_prompt


@torch.no_grad()
def generate_ids(model, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float = 1.0,
                 top_k: int = 0, prefix: str = "") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch; `prefix` goes before each formatted prompt (the few-shot examples of "GPT-prompted").
    Returns (query, response, response_mask):
    query (B, Tq) left-padded prompt ids; response (B, Tr) generated ids, padded with pad_token_id after EOS;
    response_mask (B, Tr) 1.0 on generated tokens up to and including the first EOS, 0.0 after it.
    """
    device = next(model.parameters()).device
    enc = tokenizer([prefix + format_prompt(p) for p in prompts], return_tensors="pt", padding=True,
                    add_special_tokens=False).to(device)
    sample = temperature > 0
    out = model.generate(
        **enc,
        max_new_tokens=max_new_tokens,
        do_sample=sample,
        temperature=temperature if sample else None,
        top_k=top_k if sample else None,
        top_p=1.0 if sample else None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    query = enc["input_ids"]  # (B, Tq)
    response = out[:, query.shape[1]:]  # (B, Tr)
    is_eos = response == tokenizer.eos_token_id
    # positions after the first EOS are padding: mask = 1 up to and including the first EOS
    after_eos = (torch.cumsum(is_eos.int(), dim=1) - is_eos.int()) > 0
    response_mask = (~after_eos).float()  # (B, Tr)
    response = response.masked_fill(after_eos, tokenizer.pad_token_id)
    return query, response, response_mask


def decode_responses(tokenizer, response: torch.Tensor, response_mask: torch.Tensor) -> list[str]:
    """Text of each response (EOS and padding dropped, invented turn markers cut)."""
    texts = []
    for ids, mask in zip(response.tolist(), response_mask.tolist()):
        keep = [t for t, m in zip(ids, mask) if m > 0 and t != tokenizer.eos_token_id]
        texts.append(clean_response(tokenizer.decode(keep, skip_special_tokens=True)))
    return texts


BEST_OF_N_SEED = 7  # run seed + this seeds SFT's best-of-n samples, in the probe and in the evaluation alike


def cache_dir(run_path: str | Path) -> Path:
    """Where a run keeps the texts `generate(..., cache=...)` produced: runs/<run>/logs/generations/."""
    return Path(run_path) / "logs" / "generations"


@functools.cache
def _code_version() -> str:
    """What else shapes the texts: this file and the prompt format (edit either and the cache no longer answers),
    and the torch and transformers versions that sample."""
    import transformers

    from igpt import prompting

    code = Path(__file__).read_bytes() + Path(prompting.__file__).read_bytes()
    return f"{hashlib.sha1(code).hexdigest()} torch {torch.__version__} transformers {transformers.__version__}"


def fingerprint(model) -> str:
    """A digest of the model's weights, computed where they live (no copy of a large model to the CPU): per tensor
    its name, shape, sum, sum of squares and 64 strided values. Two models differ here unless their changes leave
    every one of these numbers exactly as it was."""
    h = hashlib.sha1()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            flat = t.detach().reshape(-1).float()
            step = max(1, flat.numel() // 64)
            stats = torch.cat([flat.sum()[None], (flat * flat).sum()[None], flat[::step][:64]])
            h.update(f"{name}{tuple(t.shape)}".encode())
            h.update(stats.cpu().numpy().tobytes())
    return h.hexdigest()


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, temperature: float = 0.0,
             batch_size: int = 32, seed: int | None = 0, progress: bool = True, desc: str = "generate",
             prefix: str = "", cache: str | Path | None = None) -> list[str]:
    """Responses to `prompts` (text, in order). temperature 0 is greedy; seed makes sampling repeatable.

    With a seed, the global torch RNG is left as it was (the sampling runs in a forked RNG seeded with `seed`).
    With `cache` (a folder: `cache_dir(run)`), the texts are kept there under a key of the weights' fingerprint and
    every argument that shapes them, and a later call with the same key reads them instead of sampling again: the
    PPO and evaluation stages ask SFT, and the evaluation asks each policy, what an earlier stage already asked."""
    path = None
    if cache is not None:
        key = json.dumps([fingerprint(model), prompts, max_new_tokens, temperature, batch_size,
                          seed if temperature > 0 else None, prefix, tokenizer.eos_token_id, _code_version()])
        path = Path(cache) / f"{hashlib.sha1(key.encode()).hexdigest()}.json"
        if path.is_file():
            return json.loads(path.read_text())["texts"]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    texts: list[str] = []
    # seeded: sample in a forked RNG, so the caller's RNG is the same whether or not the cache answered
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        for i in tqdm(range(0, len(prompts), batch_size), desc=desc, disable=not progress, leave=False):
            _, response, mask = generate_ids(model, tokenizer, prompts[i:i + batch_size], max_new_tokens,
                                              temperature, prefix=prefix)
            texts.extend(decode_responses(tokenizer, response, mask))
    model.train(was_training)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"texts": texts})
    return texts
