"""The measurement store: ``measurements.csv`` (one row per case) and ``meta.json``.

Append-only and resumable: each finished row is written whole and fsynced at once, a
rerun skips case ids already present, and an interrupted run keeps every finished row.
One writer per store (an OS file lock); a store holds one machine's measurements (its
fingerprint in ``meta.json``). A row cut off by a killed writer is dropped on resume and
ignored, with a warning, by readers. pandas, filelock (a torch dependency) and the stdlib
only: the harness runs on bare GPU boxes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

# filelock is a dependency of torch itself, so it is present wherever the harness can run
from filelock import FileLock, Timeout

CSV_NAME = "measurements.csv"
META_NAME = "meta.json"

COLUMNS = [
    "case_id",
    "family",
    "kind",
    "op",
    "shape",
    "dtype",
    "params",
    "device",
    "status",
    "median_s",
    "p10_s",
    "p90_s",
    "repeats",
    "inner",
    "threads",
    "flops",
    "bytes",
    "working_set",
    "updates",
    "distinct_targets",
    "launches",
    "cold",
    # how the figure was timed (validation.rows: loop, step, graph, device); empty: by family
    "timing",
    # (p90 - p10) / median of the samples, and whether it stayed above the noise threshold
    # after the extra rounds (harness/timing.py)
    "spread",
    "noisy",
    # where a row of a public dataset came from (repository:path)
    "source",
]
REQUIRED = ("case_id", "family", "kind", "shape", "dtype", "device", "status", "median_s")


#: meta.json fields that identify the machine: a store holds one machine's measurements
FINGERPRINT = ("device", "device_name", "cpu_model", "cpu_flags", "cpu_caches", "logical_cpus", "sm_count",
               "gpu_memory_bytes", "compute_capability")
LOCK_NAME = ".roofsim.lock"


class StoreError(ValueError):
    """A store that cannot be read or appended to; one line says why."""

    user_facing = True


def _warn(message: str) -> None:
    print(f"roofsim: warning: {message}", file=sys.stderr)


def fingerprint(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: meta[k] for k in FINGERPRINT if meta.get(k) not in (None, "", [])}


class Store:
    """One dataset directory. One writer at a time (``lock``); rows are appended whole
    (one ``write`` of a complete line, then ``fsync``), so a killed writer can leave at
    most a cut-off last line, which ``repair`` drops before the next run appends."""

    def __init__(self, out: str | Path) -> None:
        self.dir = Path(out)
        self.csv = self.dir / CSV_NAME
        self.meta_path = self.dir / META_NAME
        self.lock_path = self.dir / LOCK_NAME

    # -- one writer ------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's lock or fail at once. Re-entrant in one process (calibrate holds
        it around the harness run); the kernel drops it when the holder dies."""
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.lock_path.resolve()), timeout=0, is_singleton=True)
        try:
            lock.acquire()
        except Timeout:
            raise StoreError(f"{self.dir} is being written by another roofsim process (lock {self.lock_path} "
                             "is held); one writer per store: wait for it or use another --out") from None
        try:
            yield
        finally:
            lock.release()

    # -- meta ------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        if not self.meta_path.exists():
            return {}
        try:
            doc = json.loads(self.meta_path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as e:
            raise StoreError(f"{self.meta_path}: not UTF-8 text (byte {e.start})") from None
        except (OSError, json.JSONDecodeError, RecursionError) as e:
            raise StoreError(f"{self.meta_path}: not valid JSON ({str(e).splitlines()[0] if str(e) else e})") from None
        if not isinstance(doc, dict):
            raise StoreError(f"{self.meta_path}: expected a JSON object")
        return doc

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Record a run. A store holds one machine's rows: a run on another machine (its
        fingerprint differs) is refused; the first run's fields are never rewritten, each
        run is appended to ``runs``."""
        old = self.read_meta()
        have, now = fingerprint(old), fingerprint(meta)
        for k in FINGERPRINT:
            if k in have and k in now and have[k] != now[k]:
                raise StoreError(
                    f"{self.dir} holds measurements of another machine ({k} {_short(have[k])}, "
                    f"this one has {_short(now[k])}); use another --out"
                )
        runs = list(old.get("runs", [])) if isinstance(old.get("runs"), list) else []
        runs.append({k: meta.get(k) for k in ("date", "torch_threads", "host", "mode")})
        merged = {**meta, **old, "runs": runs}
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.meta_path.with_name(f".{META_NAME}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(merged, indent=2, sort_keys=True, default=str))
        os.replace(tmp, self.meta_path)

    # -- rows ------------------------------------------------------------------
    def read(self) -> pd.DataFrame:
        return read_csv(self.csv)

    def done_ids(self) -> set[str]:
        if not self.csv.exists() or self.csv.stat().st_size == 0:
            return set()
        return set(self.read()["case_id"])

    def repair(self) -> str | None:
        """Drop a cut-off last line (a writer killed mid-row) so the next row starts on a
        line of its own; returns what was dropped, or None. Call with the lock held."""
        if not self.csv.exists():
            return None
        with open(self.csv, "rb+") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return None
            keep = data.rfind(b"\n") + 1
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return (f"{self.csv}: dropped a cut-off last row ({len(data) - keep} bytes; a writer was "
                "interrupted mid-row); that case is measured again")

    def append(self, row: dict[str, Any]) -> None:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise StoreError(f"row has columns the store does not know: {sorted(unknown)}")
        self.dir.mkdir(parents=True, exist_ok=True)
        new = not self.csv.exists() or self.csv.stat().st_size == 0
        if not new:
            _check_header(self.csv)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\r\n")
        if new:
            w.writeheader()
        w.writerow({k: _one_line(row.get(k, "")) for k in COLUMNS})
        data = buf.getvalue().encode("utf-8")
        # one write of whole lines on an O_APPEND descriptor, then fsync: the row is on disk
        # whole, or (killed mid-write) as a tail without a line end that repair() drops
        fd = os.open(self.csv, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)


def _one_line(value: Any) -> Any:
    return " ".join(value.splitlines()) if isinstance(value, str) else value


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_header(path: Path) -> None:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        head = next(csv.reader(f), [])
    if head != COLUMNS:
        raise StoreError(f"{path}: header does not match this harness's columns; not appending to a foreign file")


def _clean_text(path: Path) -> tuple[str, str | None]:
    """The file's text with a cut-off last line dropped, and what to say about that line,
    after checking that every line is one whole row (as many fields as the header)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StoreError(f"{path}: not UTF-8 text (byte {e.start}); not a roofsim measurements file") from None
    torn = None
    if text and not text.endswith("\n"):
        cut = text.rfind("\n") + 1
        if cut > 0:
            torn = (f"{path}: the last row is cut off ({len(text) - cut} bytes without a line end; a writer was "
                    "interrupted or is still writing); it is ignored")
            text = text[:cut]
    lines = text.split("\n")
    width = None
    for i, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        try:
            fields = next(csv.reader([line], strict=True))
        except csv.Error as e:
            raise StoreError(f"{path} line {i}: not a CSV row ({e})") from None
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise StoreError(f"{path} line {i}: {len(fields)} fields where the header has {width} (a row cut off "
                             "mid-write with the next one glued on?); delete that line and rerun")
    return text, torn


def read_csv(path: str | Path, warn: Callable[[str], None] | None = _warn) -> pd.DataFrame:
    """Read a measurements CSV, checking it is one of ours; a bad file raises ``StoreError``.

    A cut-off last line (a writer killed or still writing) is left out and reported
    through ``warn``; any other malformed line is an error naming the line.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CSV_NAME
    if not path.exists():
        raise StoreError(f"no measurements at {path}")
    text, torn = _clean_text(path)
    try:
        df = pd.read_csv(io.StringIO(text), dtype={"case_id": str, "shape": str, "params": str, "status": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise StoreError(f"{path}: not a readable CSV ({str(e).splitlines()[0] if str(e) else e})") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise StoreError(f"{path}: not a roofsim measurements file (missing columns: {', '.join(missing)})")
    for col in ("median_s", "p10_s", "p90_s", "flops", "bytes", "working_set", "updates", "distinct_targets"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    if df["case_id"].isna().any():
        raise StoreError(f"{path}: row {int(df['case_id'].isna().to_numpy().argmax()) + 2} has no case_id")
    for col in ("shape", "params"):
        if col in df.columns:
            _check_json_column(df, col, path)
    ok = df["status"].fillna("") == "ok"
    bad = ok & ~(df["median_s"] > 0)
    if bad.any():
        first = df.loc[bad, "case_id"].iloc[0]
        raise StoreError(f"{path}: row {first!r} has status ok but no positive median_s")
    df["params"] = df.get("params", pd.Series([""] * len(df))).fillna("")
    # said only once the rest of the file is accepted: an unreadable file gets its one error alone
    if torn and warn is not None:
        warn(torn)
    return df.drop_duplicates("case_id", keep="first").reset_index(drop=True)


def _check_json_column(df: pd.DataFrame, col: str, path: Path) -> None:
    """Every ``shape`` (and non-empty ``params``) cell is a JSON object, as the harness writes it."""
    for case_id, cell in zip(df["case_id"], df[col], strict=True):
        if not isinstance(cell, str) or not cell.strip():
            if col == "shape":
                raise StoreError(f"{path}: row {case_id!r}: empty shape (expected a JSON object such as {{\"n\": 4096}})")
            continue
        try:
            value = json.loads(cell)
        except (json.JSONDecodeError, RecursionError):
            raise StoreError(f"{path}: row {case_id!r}: {col} {cell[:40]!r} is not valid JSON") from None
        if not isinstance(value, dict):
            raise StoreError(f"{path}: row {case_id!r}: {col} must be a JSON object, got {cell[:40]!r}")
