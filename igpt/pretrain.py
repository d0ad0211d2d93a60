"""Stage 2: the GPT-3 stand-in. A byte-level BPE tokenizer and a small Llama-style model trained from scratch
on the world's web corpus with the transformers Trainer.

    igpt.pretrain.train(cfg) -> runs/<run>/base/      (and runs/<run>/tokenizer/)

If `pretrain.base_model` names a pretrained model (hub id or local path), nothing is trained: that model is the
base for every later stage (`base_path(cfg)`), and its tokenizer is the tokenizer.

If `pretrain.shipped` names a folder the repository keeps (`data/base/tiny` for the tiny profile, made once by
`ship`), and its stamp says it was pretrained on this run's web, with this architecture, tokenizer size and seed,
its tokenizer, model and training curve are copied into the run instead of pretraining: the paper likewise started
from a GPT-3 trained once. Any other world, size or seed pretrains here as configured.

    igpt pretrain --config tiny --run-dir runs/base pretrain.shipped=null pretrain.steps=1500   # train it again
    igpt ship-base --config tiny --run-dir runs/base --to data/base/tiny                        # and keep it

The paper's GPT-3 used a 50k BPE and Adam with beta2 = 0.95 and a cosine schedule (Brown et al. 2020, App. B);
ours is the same recipe at ~2M parameters: the tiny profile trains in minutes on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import time
import zlib
from pathlib import Path

import torch

from igpt import hf, launch
from igpt.config import CONFIG_DIR, RunConfig
from igpt.errors import StageError
from igpt.generation import fingerprint
from igpt.io import atomic_dir, clear_if_other_setup, file_crc, write_json

EOS = "<|endoftext|>"
PAD = "<|pad|>"


# ----------------------------------------------------------------------------------------------------------------
# tokenizer


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE on the corpus, wrapped as a PreTrainedTokenizerFast with EOS and PAD set (AutoTokenizer loads
    it back). Byte-level means any string round-trips, including characters the corpus never had."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=None,
                                   unk_token=None, clean_up_tokenization_spaces=False)
    fast.padding_side = "left"  # generation pads on the left so every prompt ends where generation starts
    return fast


def load_tokenizer(path: str | Path):
    """The tokenizer of a run (or of a pretrained model), with a PAD token and left padding."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


# ----------------------------------------------------------------------------------------------------------------
# model


def model_config(cfg: RunConfig, vocab_size: int, eos_id: int, pad_id: int):
    """A Llama-style decoder (RMSNorm, rotary positions, SwiGLU MLP) so LoRA, FSDP and vLLM work on it unchanged."""
    from transformers import LlamaConfig

    p = cfg.pretrain
    if p.n_embd % p.n_head:
        raise StageError(f"pretrain.n_embd ({p.n_embd}) must be divisible by pretrain.n_head ({p.n_head})")
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=p.n_embd,
        intermediate_size=int(8 / 3 * p.n_embd / 16 + 0.5) * 16,  # Llama's 8/3 * d, rounded to 16
        num_hidden_layers=p.n_layer,
        num_attention_heads=p.n_head,
        num_key_value_heads=p.n_head,
        max_position_embeddings=p.context,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,  # at this size the embedding is a large share of the parameters
        attention_dropout=p.dropout,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=None,
    )


def base_path(cfg: RunConfig) -> Path | str:
    """Where the base model lives: the configured pretrained model, or the one this stage trained."""
    if cfg.pretrain.base_model:
        return cfg.pretrain.base_model
    path = cfg.path / "base"
    if not (path / "config.json").is_file():
        raise StageError(f"{path} has no model: run `igpt pretrain --run-dir {cfg.run_dir}` (notebook 02) first")
    return path


def tokenizer_path(cfg: RunConfig) -> Path | str:
    return cfg.pretrain.base_model or cfg.path / "tokenizer"


# ----------------------------------------------------------------------------------------------------------------
# a base model kept in the repository


def _stamp(cfg: RunConfig, train_texts: list[str], val_texts: list[str]) -> dict:
    """What a shipped base must have been trained on to stand in for this run's pretraining."""
    crc = 0
    for t in train_texts + ["<val>"] + val_texts:
        crc = zlib.crc32(t.encode() + b"\0", crc)
    p = cfg.pretrain
    return {"corpus_crc": crc, "seed": cfg.seed, "precision": cfg.precision,
            "model": {k: getattr(p, k) for k in ("vocab_size", "n_layer", "n_embd", "n_head", "context")}}


def shipped_path(cfg: RunConfig) -> Path:
    """pretrain.shipped as a folder: absolute, relative to the working folder, or else to the repository."""
    path = Path(cfg.pretrain.shipped)
    return path if path.is_absolute() or path.exists() else CONFIG_DIR.parent / path


def use_shipped(cfg: RunConfig, train_texts: list[str], val_texts: list[str]) -> Path | None:
    """Copy the shipped base into runs/<run>/{tokenizer,base}/ when its stamp matches this run; None otherwise."""
    src = shipped_path(cfg)
    stamp_file = src / "shipped.json"
    if not stamp_file.is_file():
        raise StageError(f"pretrain.shipped={cfg.pretrain.shipped!r}: {stamp_file} not found; give a folder made by "
                         f"`igpt ship-base`, or pretrain.shipped=null to pretrain here")
    stamp = json.loads(stamp_file.read_text())
    want = _stamp(cfg, train_texts, val_texts)
    differ = [k for k in want if stamp.get(k) != want[k]]
    if differ:
        what = {"corpus_crc": "another web (world)", "seed": "another seed", "precision": "another precision",
                "model": "another model size or tokenizer"}
        print(f"[igpt] pretrain: the shipped base in {src} was trained on {', '.join(what[k] for k in differ)}; "
              f"pretraining here ({cfg.pretrain.steps} steps)")
        return None
    for part in ("tokenizer", "base"):
        with atomic_dir(cfg.path / part) as tmp:
            shutil.copytree(src / part, tmp, dirs_exist_ok=True)
    shutil.copyfile(src / "base_metrics.jsonl", cfg.path / "base_metrics.jsonl")
    s = json.loads((cfg.path / "base" / "summary.json").read_text())
    print(f"[igpt] pretrain: using the base shipped in {src} ({s['parameters'] / 1e6:.2f}M parameters, "
          f"{s['tokens_seen'] / 1e6:.1f}M tokens, val loss {s['val_loss']:.3f}); nothing to train")
    return cfg.path / "base"


def ship(cfg: RunConfig, dest: str | Path) -> Path:
    """Keep this run's tokenizer, base model and training curve in `dest` with the stamp `use_shipped` checks."""
    from igpt import data

    dest = Path(dest)
    for part in ("tokenizer", "base"):
        if not (cfg.path / part / "tokenizer.json").is_file():
            raise StageError(f"{cfg.path / part} is incomplete: run `igpt pretrain --run-dir {cfg.run_dir}` first")
    ds = data.load(cfg, "pretrain")
    stamp = _stamp(cfg, list(ds["train"]["text"]), list(ds["validation"]["text"]))
    with atomic_dir(dest) as tmp:
        for part in ("tokenizer", "base"):
            shutil.copytree(cfg.path / part, tmp / part)
        shutil.copyfile(cfg.path / "base_metrics.jsonl", tmp / "base_metrics.jsonl")
        write_json(tmp / "shipped.json", stamp)
    print(f"[igpt] ship-base: {cfg.path / 'base'} -> {dest}")
    return dest


# ----------------------------------------------------------------------------------------------------------------
# data


def pack(texts: list[str], tokenizer, block: int) -> list[list[int]]:
    """Concatenate documents separated by EOS and cut into blocks of `block` tokens (the last partial one dropped;
    GPT-3 also trained on full context windows). The documents are tokenised a thousand at a time: one call over
    the whole web keeps every document's encoding (offsets, token strings) alive at once, ~440 MB more at tiny."""
    ids: list[int] = []
    for start in range(0, len(texts), 1000):
        for enc in tokenizer(texts[start:start + 1000], add_special_tokens=False)["input_ids"]:
            ids.extend(enc)
            ids.append(tokenizer.eos_token_id)
    n = len(ids) // block
    return [ids[i * block:(i + 1) * block] for i in range(n)]


def load_corpus(cfg: RunConfig) -> tuple[list[str], list[str]]:
    from igpt import data

    ds = data.load(cfg, "pretrain")
    return list(ds["train"]["text"]), list(ds["validation"]["text"])


@torch.no_grad()
def eval_loss(model, blocks: list[list[int]], batch_size: int = 16, max_blocks: int = 256,
              cache: str | Path | None = None) -> float:
    """Mean next-token cross-entropy over (up to `max_blocks` of) the held-out blocks: the pretraining validation
    loss the alignment tax is measured with. With `cache` (a run's `generation.cache_dir`), kept there under the
    weights' fingerprint and the blocks, like `generation.generate`'s texts: the SFT, PPO and evaluation stages
    each measure the SFT model, and the evaluation measures the base model twice (GPT and GPT-prompted)."""
    path = None
    if cache is not None:  # the key holds whatever shapes the number, this file's code included
        p = next(model.parameters())
        key = json.dumps([fingerprint(model), str(p.dtype), p.device.type, blocks[:max_blocks], batch_size,
                          hashlib.sha1(Path(__file__).read_bytes()).hexdigest(), torch.__version__])
        path = Path(cache) / f"loss-{hashlib.sha1(key.encode()).hexdigest()}.json"
        if path.is_file():
            return json.loads(path.read_text())["loss"]
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    blocks = blocks[:max_blocks]
    for i in range(0, len(blocks), batch_size):
        x = torch.tensor(blocks[i:i + batch_size], device=device)  # (B, T)
        out = model(input_ids=x, labels=x)
        n = x.numel() - x.shape[0]  # predicted positions
        total += out.loss.item() * n
        count += n
    loss = total / max(count, 1)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"loss": loss})
    return loss


# ----------------------------------------------------------------------------------------------------------------
# the stage


def train(cfg: RunConfig) -> Path:
    """Train the tokenizer and the base model; write runs/<run>/tokenizer/ and runs/<run>/base/. Resumable: an
    interrupted run continues from its last Trainer checkpoint in runs/<run>/logs/pretrain/. Runs in one process
    or in several (accelerate launch / torchrun): they share each batch; the main process trains the tokenizer
    first and evaluates and publishes the model at the end."""
    hf.quiet()
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, LlamaForCausalLM, Trainer, TrainingArguments

    p = cfg.pretrain
    if p.base_model:
        print(f"[igpt] pretrain: using the pretrained model {p.base_model!r}; nothing to train")
        return Path(p.base_model)
    state = launch.prepare(cfg, "pretrain")  # refuses an impossible set-up before any work
    torch.manual_seed(cfg.seed)
    train_texts, val_texts = load_corpus(cfg)
    if p.shipped:
        with state.main_process_first():  # the main process copies it; the others find it there
            shipped = use_shipped(cfg, train_texts, val_texts)
        if shipped is not None:
            return shipped

    tok_dir = cfg.path / "tokenizer"
    with state.main_process_first():  # the main process trains and saves it; the others load that one
        if (tok_dir / "tokenizer.json").is_file():
            tokenizer = load_tokenizer(tok_dir)  # resuming: the tokenizer must be the one the checkpoint saw
        else:
            tokenizer = train_tokenizer(train_texts, p.vocab_size)
            with atomic_dir(tok_dir) as tmp:
                tokenizer.save_pretrained(tmp)

    train_blocks = pack(train_texts, tokenizer, p.context)
    val_blocks = pack(val_texts, tokenizer, p.context)
    if not train_blocks or not val_blocks:
        raise StageError(f"the corpus is too small for one block of {p.context} tokens per split; "
                         "raise world.corpus_docs or lower pretrain.context")

    mcfg = model_config(cfg, len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id)
    model = LlamaForCausalLM(mcfg)

    work = cfg.path / "logs" / "pretrain"
    args = TrainingArguments(
        **hf.trainer_kwargs(cfg, work),
        max_steps=p.steps,
        per_device_train_batch_size=launch.per_process(p.batch_size, state.num_processes, "pretrain.batch_size"),
        learning_rate=p.lr,
        lr_scheduler_type="cosine",
        warmup_steps=p.warmup_steps,
        adam_beta1=p.betas[0],
        adam_beta2=p.betas[1],
        weight_decay=p.weight_decay,
        max_grad_norm=1.0,
        logging_steps=max(1, p.steps // 50),
        save_strategy="steps",
        save_steps=max(1, p.steps // 5),
        save_total_limit=1,
    )
    with state.main_process_first():  # the main process clears checkpoints of another setup before anyone reads
        clear_if_other_setup(work, {"pretrain": dataclasses.asdict(p), "seed": cfg.seed, "precision": cfg.precision,
                                    "pretrain_file": cfg.data.pretrain_file,
                                    "tokenizer": file_crc(tok_dir / "tokenizer.json")}, "pretrain")
    ckpt = hf.last_checkpoint(work)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict({"input_ids": train_blocks}),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        callbacks=[hf.MetricsCallback(cfg.path / "base_metrics.jsonl", "pretrain", hf.checkpoint_step(ckpt))],
    )
    hf.tidy(trainer, "pretrain")
    t0 = time.time()
    if ckpt is not None and hf.checkpoint_step(ckpt) >= p.steps and (Path(ckpt) / "model.safetensors").is_file():
        # killed after the last checkpoint (while publishing): transformers 5.24 resumed at max_steps trains one
        # step more, so take the finished weights and state from the checkpoint instead
        from safetensors.torch import load_model
        from transformers import TrainerState

        load_model(model, str(Path(ckpt) / "model.safetensors"))
        trainer.state = TrainerState.load_from_json(str(Path(ckpt) / "trainer_state.json"))
    else:
        trainer.train(resume_from_checkpoint=ckpt)
    seconds = time.time() - t0
    model = hf.trained_model(trainer, LlamaForCausalLM.from_pretrained)
    out = cfg.path / "base"
    if model is not None:  # the main process; the others wait until it has published
        _publish(cfg, trainer, model, tokenizer, train_blocks, val_blocks, seconds, hf.checkpoint_step(ckpt), out)
    state.wait_for_everyone()
    return out


def _publish(cfg: RunConfig, trainer, model, tokenizer, train_blocks, val_blocks, seconds: float,
             resumed_step: int | None, out: Path) -> None:
    """Measure the validation loss and write runs/<run>/base/ whole."""
    p = cfg.pretrain
    n_params = sum(t.numel() for t in model.parameters())
    val = eval_loss(model, val_blocks)
    tokens = (p.steps - (resumed_step or 0)) * p.batch_size * p.context
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "summary.json", {
            "parameters": n_params,
            "val_loss": val,
            "val_perplexity": math.exp(val),
            "train_loss": hf.run_train_loss(trainer.state),
            "train_blocks": len(train_blocks),
            "val_blocks": len(val_blocks),
            "tokens_seen": p.steps * p.batch_size * p.context,
            "tokens_per_second": tokens / seconds,
            "seconds": seconds,
            "vocab_size": len(tokenizer),
        })
    print(f"[igpt] pretrain: {n_params / 1e6:.2f}M parameters, val loss {val:.3f}, {tokens / seconds:.0f} tokens/s")
