"""One PPO iteration of TRL 1.12's `trl.experimental.ppo.PPOTrainer`, timed by phase; run by benchmarks/run.py in
its own venv (benchmarks/.venv-trl112: TRL's last PPO trainer, removed in 1.13). igpt is not importable here.

    python benchmarks/ppo_trl.py RUN_DIR PROMPTS_JSON OUT_JSON

The same weights igpt's PPO starts from: policy and a separate frozen reference from RUN_DIR/sft, reward model and
value model from RUN_DIR/rm. PROMPTS_JSON holds the 64 formatted prompts of igpt's measured iteration; they are
the whole data set and one batch, so TRL's shuffled loader gives every iteration exactly those prompts. Settings
mirror igpt's tiny profile (benchmarks/run.py passes them): batch 64, minibatch 16 (one optimizer step each),
1 PPO epoch, 48 response tokens, temperature 1, KL 0.02, missing-EOS penalty 1. Two iterations run; the second
is measured, as on igpt's side. Phases are timed by wrapping TRL's own module functions (batch_generation,
get_reward, forward), and the work is counted: generated tokens and optimizer steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from counting import count_optimizer_steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("prompts")
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--mini-batch", type=int, default=16)
    ap.add_argument("--response-length", type=int, default=48)
    ap.add_argument("--kl-coef", type=float, default=0.02)
    args = ap.parse_args()
    import datasets
    import trl.experimental.ppo.ppo_trainer as pt
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from transformers.utils import logging
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    logging.set_verbosity_error()
    run = Path(args.run_dir)
    tok = AutoTokenizer.from_pretrained(run / "sft")
    tok.padding_side = "left"  # TRL's rollout takes left-padded queries
    prompts = json.loads(Path(args.prompts).read_text())
    ds = datasets.Dataset.from_dict({"input_ids": [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]})

    policy = AutoModelForCausalLM.from_pretrained(run / "sft")
    ref = AutoModelForCausalLM.from_pretrained(run / "sft")
    reward = AutoModelForSequenceClassification.from_pretrained(run / "rm", num_labels=1)
    value = AutoModelForSequenceClassification.from_pretrained(run / "rm", num_labels=1)

    # --- instrumentation: event times from TRL's own functions, optimizer steps, generated tokens
    events: list[tuple[str, float, float]] = []
    gen_tokens: list[tuple[int, int, int]] = []  # (computed positions, tokens through EOS, query width)

    def timed(name, fn, classify=None):
        def wrapper(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            events.append((classify(a) if classify else name, t, time.perf_counter()))
            return out
        return wrapper

    batch_generation = pt.batch_generation

    def counted_generation(model, queries, *a, **k):
        qr, logits = batch_generation(model, queries, *a, **k)
        resp = qr[:, queries.shape[1]:]  # (B, T)
        first_eos = pt.first_true_indices(resp == tok.eos_token_id)  # (B,): T when none
        gen_tokens.append((resp.numel(), int(torch.clamp(first_eos + 1, max=resp.shape[1]).sum()), queries.shape[1]))
        return qr, logits

    pt.batch_generation = timed("generate", counted_generation)
    pt.get_reward = timed("reward", pt.get_reward, lambda a: "score" if a[0] is reward else "value")
    pt.forward = timed("forward", pt.forward, lambda a: "update" if hasattr(a[0], "value_model") else "ref")
    steps = count_optimizer_steps()
    marks: list[tuple[float, int]] = []

    class Mark(TrainerCallback):
        def on_step_end(self, *a, **k):
            marks.append((time.perf_counter(), steps["n"]))

    with tempfile.TemporaryDirectory(prefix="trl-ppo-bench-") as tmp:
        cfg = PPOConfig(
            output_dir=tmp, report_to="none", save_strategy="no", disable_tqdm=True, seed=0, use_cpu=True, bf16=False,
            per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,  # rollout batch = 64 ...
            num_mini_batches=args.batch // args.mini_batch,  # ... cut into minibatches of 16, one step each
            local_rollout_forward_batch_size=args.batch, num_ppo_epochs=1, total_episodes=2 * args.batch,
            response_length=args.response_length, temperature=1.0, stop_token="eos", missing_eos_penalty=1.0,
            kl_coef=args.kl_coef, num_sample_generations=0, learning_rate=1e-4, logging_steps=1000,
        )
        trainer = PPOTrainer(args=cfg, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
                             train_dataset=ds, value_model=value, callbacks=[Mark()])
        trainer.train()

    (t_a, s_a), (t_b, s_b) = marks
    ev = [e for e in events if e[1] >= t_a]  # the measured (second) iteration

    def total(name):
        return sum(t1 - t0 for n, t0, t1 in ev if n == name)

    gen_end = max(t1 for n, _, t1 in ev if n == "generate")
    update_start = min(t0 for n, t0, _ in ev if n == "update")
    out = {
        "episodes": args.batch, "wall": t_b - t_a, "episodes_per_s": args.batch / (t_b - t_a),
        "generate": total("generate"), "score": total("score"),
        "forward": update_start - gen_end - total("score"),  # ref + value passes, logprob gather, GAE
        "update": t_b - update_start, "optimizer_steps": s_b - s_a,
        "generated_positions": gen_tokens[-1][0], "generated_tokens": gen_tokens[-1][1],
        "query_width": gen_tokens[-1][2], "response_width": gen_tokens[-1][0] // args.batch,
    }
    Path(args.out).write_text(json.dumps(out))
    print(json.dumps(out), file=sys.stderr)


if __name__ == "__main__":
    main()
