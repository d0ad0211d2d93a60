"""Run `igpt` commands (the real command line) in each process of a multi-process launch, one after the other,
and save the weights each process ends each training with to <run-dir>/<stage>_rank<i>.safetensors (for `ppo`: the
PPO-ptx policy's parameters, in order). Commands are
separated by `::` (one launch, one start-up of torch in each process, for several stages). Used by
test_multiprocess.py:

    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 tests/mp_stage.py \
        sft --run-dir A ... :: rm --run-dir B ...
"""

import os
import sys

from safetensors.torch import save_file
from transformers import TrainerCallback

from igpt import hf, losses
from igpt.cli import main


class SaveWeights(TrainerCallback):
    def __init__(self, stem: str):
        self.stem = stem

    def on_train_end(self, args, state, control, model=None, **kwargs):
        # clone: tied embeddings share storage, which safetensors refuses to write twice
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        save_file(weights, f"{self.stem}_rank{args.process_index}.safetensors")


def save_after_ema(stem: str, ema_update):
    """PPO has no Trainer: its EMA update, called by every process after each optimizer step with the policy's
    parameters, is where each process's weights are saved (the last call wins: the end of the run)."""
    def wrapped(ema, params, decay):
        save_file({str(i): t.detach().clone() for i, t in enumerate(params)},
                  f"{stem}_rank{os.environ.get('RANK', '0')}.safetensors")
        return ema_update(ema, params, decay)
    return wrapped


def run(argv: list[str]) -> int:
    stem = f"{argv[argv.index('--run-dir') + 1]}/{argv[0]}"
    tidy, ema_update = hf.tidy, losses.ema_update
    hf.tidy = lambda trainer, desc: tidy(trainer, desc).add_callback(SaveWeights(stem)) or trainer
    losses.ema_update = save_after_ema(stem, ema_update)
    try:
        return main(argv)
    finally:
        hf.tidy, losses.ema_update = tidy, ema_update


if __name__ == "__main__":
    commands = [[]]
    for arg in sys.argv[1:]:
        commands.append([]) if arg == "::" else commands[-1].append(arg)
    for command in commands:
        if rc := run(command):
            sys.exit(rc)
