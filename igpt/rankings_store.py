"""The rankings people make in the notebook widget, kept so that no label is ever lost.

The paper's labelers ranked K completions per prompt (§3.4). Here a person ranks in a notebook, and the kernel may
crash, the browser may close, or two notebooks may write to the same run. RankingStore is one append-only JSONL
file; each line is one event, with a checksum of its content:

    {"kind": "ranking", "crc": 2213376019, "record": {"id": ..., "prompt": ..., "completions": [...], "ranking": ...}}
    {"kind": "skip", "crc": 1736402215, "record": {"id": ..., "labeler_id": ...}}

Guaranteed, on a local disk (ext4, xfs, btrfs, apfs, tmpfs):
- when append() returns True the record is on disk (fsynced): a crash after that does not lose it;
- a writer killed mid-append leaves at most a torn last line. Readers skip it (bad JSON or bad crc; counted in
  `corrupt_lines`) and the next append cuts it away first, so a valid record is never lost or glued to garbage;
- two processes never interleave: an append holds an exclusive flock, re-reads what others appended, and writes
  its line with one os.write on an O_APPEND descriptor;
- an id is stored at most once, also across processes (the check is made under the lock, after the re-read).
Not guaranteed:
- network and synced folders (NFS, SMB, Dropbox, iCloud): flock may only lock on one machine and O_APPEND is not
  atomic between machines, so two machines writing one file can interleave. Give each machine its own file;
- a disk that acknowledges fsync without writing (some USB sticks, VMs with unsafe caching) can lose the last
  appends on power loss. The crc still catches the garbage such a crash leaves;
- that the ranking is what the person meant: records are checked against the rankings schema only.
"""

from __future__ import annotations

import fcntl
import json
import os
import zlib
from pathlib import Path

from igpt.errors import DataError
from igpt.io import jsonl_line, write_jsonl

KINDS = ("ranking", "skip")
SCHEMA_FIELDS = ("id", "prompt", "completions", "ranking", "labeler_id", "category")


def _validate_ranking(record, path) -> dict:
    # imported here: igpt.data may not exist yet when this module is imported. The function lives in igpt.adapters
    # (igpt.data re-exports it); taking it from there keeps `datasets` out of every process that only appends.
    try:
        from igpt.adapters import validate_ranking
    except ImportError:
        from igpt.data import validate_ranking
    return validate_ranking(record, str(path), None)


def _fsync_dir(path: Path) -> None:
    # a new file's name lives in its folder: fsync the folder too, or a crash can lose the whole file
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a folder; the file's own data is already synced
    finally:
        os.close(fd)


def _canonical(kind: str, record: dict) -> bytes:
    # sorted keys and ASCII escapes: the same record always gives the same bytes, so the same crc
    return json.dumps({"kind": kind, "record": record}, sort_keys=True, separators=(",", ":")).encode()


def _parse(line: bytes) -> tuple[str, dict] | None:
    """(kind, record) of one stored line, or None if it is torn or corrupt."""
    try:
        obj = json.loads(line)
        kind, crc, record = obj["kind"], obj["crc"], obj["record"]
    except (ValueError, KeyError, TypeError):  # bad JSON, bad UTF-8 (a ValueError too), not an object
        return None
    if kind not in KINDS or not isinstance(record, dict) or not isinstance(record.get("id"), str):
        return None
    return (kind, record) if zlib.crc32(_canonical(kind, record)) == crc else None


class RankingStore:
    """An append-only, crash-safe, multi-process-safe JSONL file of ranking records and skip markers."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._reset(None)

    def _reset(self, ident) -> None:
        self._ident = ident  # (device, inode) of the file parsed so far: a replaced file is re-read whole
        self._offset = 0  # bytes parsed so far; always just after a newline
        self._ranked: dict[str, dict] = {}  # id -> record, in file order
        self._skipped: dict[str, dict] = {}  # id -> skip marker
        self._bad = 0  # complete lines that failed the JSON or crc check
        self._torn = False  # the file ends in a line without its newline: a writer died mid-line

    @property
    def corrupt_lines(self) -> int:
        """Lines skipped as torn or corrupt, as of the last read."""
        return self._bad + self._torn

    # ------------------------------------------------------------------------- reading

    def _catch_up(self, fd: int) -> None:
        """Parse what was appended since we last looked (by us or by any other process)."""
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != self._ident or st.st_size < self._offset:
            self._reset((st.st_dev, st.st_ino))
        data = os.pread(fd, st.st_size - self._offset, self._offset) if st.st_size > self._offset else b""
        end = data.rfind(b"\n") + 1  # only whole lines; a tail without newline is torn (we read under the lock)
        for line in data[:end].split(b"\n"):
            if line.strip():
                self._take(line)
        self._offset += end
        self._torn = end < len(data)

    def _take(self, line: bytes) -> None:
        parsed = _parse(line)
        if parsed is None:
            self._bad += 1
            return
        kind, record = parsed
        # setdefault: should a file ever hold an id twice (e.g. two files concatenated by hand), the first wins
        (self._ranked if kind == "ranking" else self._skipped).setdefault(record["id"], record)

    def _refresh(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._reset(None)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits out an append in progress, so we never see half of it
            self._catch_up(fd)
        finally:
            os.close(fd)  # closing releases the lock

    def records(self) -> list[dict]:
        """The valid ranking records, in the order they were appended (torn and corrupt lines skipped)."""
        self._refresh()
        return list(self._ranked.values())

    def ids(self) -> list[str]:
        self._refresh()
        return list(self._ranked)

    def skipped_ids(self) -> set[str]:
        self._refresh()
        return set(self._skipped)

    def done_ids(self) -> set[str]:
        """Ids ranked or skipped: what the widget does not offer again."""
        self._refresh()
        return set(self._ranked) | set(self._skipped)

    def __len__(self) -> int:
        self._refresh()
        return len(self._ranked)

    def __contains__(self, record_id) -> bool:
        self._refresh()
        return record_id in self._ranked

    # ------------------------------------------------------------------------- writing

    def append(self, record: dict, flags: dict | None = None) -> bool:
        """Store one ranking record; True once it is on disk, False if its id is already stored (nothing written).

        The record is checked against the rankings schema first (a DataError writes nothing). `flags` (or the
        record's own "flags") are the labeler's marks, e.g. {"harmful": False, "hallucination": True}."""
        rec = _validate_ranking(record, self.path)
        flags = record.get("flags") if flags is None else flags
        if flags:
            if not isinstance(flags, dict) or not all(isinstance(k, str) and isinstance(v, bool)
                                                      for k, v in flags.items()):
                raise DataError(self.path, None, "flags", f"wants an object of name -> true/false, got {flags!r}")
            rec["flags"] = dict(flags)
        return self._write("ranking", rec)

    def skip(self, prompt_id: str, labeler_id: str | None = None) -> bool:
        """Mark a prompt as skipped, so a resumed session does not offer it again. False if already done."""
        if not isinstance(prompt_id, str) or not prompt_id.strip():
            raise DataError(self.path, None, "id", f"a skip needs a non-empty string id, got {prompt_id!r}")
        marker = {"id": prompt_id} if labeler_id is None else {"id": prompt_id, "labeler_id": labeler_id}
        return self._write("skip", marker)

    def _write(self, kind: str, record: dict) -> bool:
        crc = zlib.crc32(_canonical(kind, record))
        try:
            line = jsonl_line({"kind": kind, "crc": crc, "record": record}).encode()
        except UnicodeEncodeError:
            raise DataError(self.path, None, None, "holds text that is not valid Unicode (a lone surrogate)") from None
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one writer at a time, across processes
            self._catch_up(fd)  # another process may have appended this very id since we last read
            if self._torn:
                self._repair(fd)
            done = self._ranked if kind == "ranking" else self._ranked.keys() | self._skipped.keys()
            if record["id"] in done:
                return False
            n = os.write(fd, line)  # one write on O_APPEND: the line lands whole at the end, after any other
            if n != len(line):  # disk full or interrupted: take the partial line back, leave the file as it was
                os.ftruncate(fd, self._offset)
                raise OSError(f"{self.path}: wrote {n} of {len(line)} bytes (disk full?); nothing was stored")
            os.fsync(fd)
            self._offset += n
            self._take(line[:-1])
        finally:
            os.close(fd)  # releases the lock
        if created:
            _fsync_dir(self.path.parent)  # make the new file's name durable too
        return True

    def _repair(self, fd: int) -> None:
        """Deal with a last line that has no newline (we hold the exclusive lock, so its writer is gone)."""
        size = os.fstat(fd).st_size
        tail = os.pread(fd, size - self._offset, self._offset)
        if _parse(tail) is not None:
            os.write(fd, b"\n")  # a whole, valid line that lost only its newline (edited by hand): keep it
        else:
            os.ftruncate(fd, self._offset)  # a torn line: never committed (append writes the newline with it)
        self._catch_up(fd)

    # ------------------------------------------------------------------------- export

    def export(self, path: str | Path) -> Path:
        """Write the records as a canonical rankings JSONL (whole or not at all); igpt's readers ignore "flags"."""
        return write_jsonl(path, self.records())

    def to_dataset(self):
        """The records as a datasets.Dataset: the rankings schema plus "flags", the names of the flags set."""
        import datasets

        feats = datasets.Features({
            "id": datasets.Value("string"), "prompt": datasets.Value("string"),
            "completions": datasets.List(datasets.Value("string")), "ranking": datasets.List(datasets.Value("int64")),
            "labeler_id": datasets.Value("string"), "category": datasets.Value("string"),
            "flags": datasets.List(datasets.Value("string"))})
        rows = self.records()
        cols = {k: [r[k] for r in rows] for k in SCHEMA_FIELDS}
        # a list of set names keeps one column type however many flag names the records use
        cols["flags"] = [sorted(k for k, v in r.get("flags", {}).items() if v) for r in rows]
        return datasets.Dataset.from_dict(cols, features=feats)
