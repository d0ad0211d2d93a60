"""Run-folder I/O: nothing is written half. Files go to a temporary name, are fsynced, then renamed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import zlib
from pathlib import Path


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _tmp_prefix(path: Path) -> str:
    # the writer's pid is in the name, so a later writer can tell a dead process's leftovers from a live one's
    return f".{path.name}.igpt-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep(path: str | Path) -> None:
    """Clear what a process killed mid-write (SIGKILL, power loss) left beside `path`: temporary files and folders
    of writers no longer alive, and, if it died between atomic_dir's two renames, the previous version is put back."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    own = re.compile(rf"\.{re.escape(path.name)}\.igpt-(\d+)-.*\.tmp")
    for entry in path.parent.iterdir():
        m = own.fullmatch(entry.name)
        if m and not _alive(int(m.group(1))):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
    old = path.with_name(f".{path.name}.old")
    if old.exists() and not path.exists():
        os.replace(old, path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text to path so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run folders are meant to be read by others
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


# Characters that json.dumps(ensure_ascii=False) leaves raw inside strings but that Python's str.splitlines (and
# other line readers) take for line breaks: a sampled text holding one (the tiny models write odd bytes) split its
# record in two for every reader that did `read_text().splitlines()`. Escaped, the line reads back the same.
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def jsonl_line(obj) -> str:
    """One JSONL line (with its "\\n"): UTF-8 text kept readable, and no character inside that any line reader
    takes for a line break."""
    line = json.dumps(obj, ensure_ascii=False)
    for raw, escaped in _LINE_BREAKS.items():
        line = line.replace(raw, escaped)  # these occur only inside JSON strings, where the escape means the same
    return line + "\n"


def write_jsonl(path: str | Path, rows) -> Path:
    return atomic_write_text(path, "".join(jsonl_line(r) for r in rows))


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file written by igpt (trusted). For user files use igpt.data.read_records."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield a temporary folder beside `path`; on success it replaces `path` whole, on error it vanishes.

        with atomic_dir(run / "sft") as tmp:
            model.save_pretrained(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes 0700; run folders are meant to be read by others
    try:
        yield tmp
        for root, _, files in os.walk(tmp):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    os.fsync(f.fileno())
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class MetricsLogger:
    """Appends one JSON object per step to metrics.jsonl (flushed and fsynced, so a crash loses at most a line)."""

    def __init__(self, path: str | Path, resume_from_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_from_step is not None and self.path.exists():
            # drop lines past the checkpoint we resume from, so the log never holds a step twice
            rows = [r for r in read_jsonl_lenient(self.path) if r.get("step", -1) <= resume_from_step]
            write_jsonl(self.path, rows)
        elif resume_from_step is None and self.path.exists():
            self.path.unlink()

    def log(self, row: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_jsonl_lenient(path: str | Path) -> list[dict]:
    """Read a JSONL log, skipping a torn last line (a crash mid-append)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def file_crc(path: str | Path) -> int | None:
    """crc32 of a small file's bytes (a stage's summary.json: it changes whenever the stage is trained again), or
    None when the file is missing. Checkpoint stamps use it to tell whether an upstream model is still the same."""
    path = Path(path)
    return zlib.crc32(path.read_bytes()) if path.is_file() else None


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def clear_if_other_setup(work: str | Path, setup: dict, stage: str) -> None:
    """Checkpoints in `work` resume only the run that wrote them. `work/igpt_setup.json` records the setup (the
    stage's config and what it was trained from); when the stamp differs from `setup`, the folder is cleared and the
    stage starts over, naming the keys that changed. Without this, running a finished stage again with, say, a new
    ppo.kl_coef would resume its last checkpoint and republish the old run. A folder without a stamp (written before
    stamps existed) is resumed as before. Call it in the main process, before any process reads `work`."""
    work = Path(work)
    stamp = work / "igpt_setup.json"
    setup = json.loads(json.dumps(setup))  # tuples as lists, int keys as strings: as the stamp reads back
    if stamp.is_file():
        old = json.loads(stamp.read_text())
        if old != setup:
            a, b = _flat(old), _flat(setup)
            changed = sorted(k for k in a.keys() | b.keys() if a.get(k, "<missing>") != b.get(k, "<missing>"))
            print(f"[igpt] {stage}: the checkpoints in {work} were made with another {', '.join(changed)}; "
                  f"starting over")
            stale = work.with_name(_tmp_prefix(work) + "stale.tmp")
            os.replace(work, stale)  # one rename: a crash leaves the old checkpoints whole or gone, never half
            shutil.rmtree(stale)
    sweep(work)  # what a process killed between that rename and the rmtree left
    work.mkdir(parents=True, exist_ok=True)
    write_json(stamp, setup)
