"""The measurement store: ``measurements.csv`` (one row per case) and ``meta.json``.

Append-only and resumable: each finished row is written and flushed to disk at once, a
rerun skips case ids already present, and an interrupted run keeps every finished row.
pandas and the stdlib only (the harness runs on bare GPU boxes).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

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
    # where a row of a public dataset came from (repository:path)
    "source",
]
REQUIRED = ("case_id", "family", "kind", "shape", "dtype", "device", "status", "median_s")


class StoreError(ValueError):
    """A store that cannot be read or appended to; one line says why."""

    user_facing = True


class Store:
    def __init__(self, out: str | Path) -> None:
        self.dir = Path(out)
        self.csv = self.dir / CSV_NAME
        self.meta_path = self.dir / META_NAME

    # -- meta ------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        if not self.meta_path.exists():
            return {}
        try:
            doc = json.loads(self.meta_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise StoreError(f"{self.meta_path}: not valid JSON ({e})") from None
        if not isinstance(doc, dict):
            raise StoreError(f"{self.meta_path}: expected a JSON object")
        return doc

    def write_meta(self, meta: dict[str, Any]) -> None:
        old = self.read_meta()
        if old.get("device") and meta.get("device") and old["device"] != meta["device"]:
            raise StoreError(
                f"{self.dir} holds measurements of device {old['device']!r}, not {meta['device']!r}; use another --out"
            )
        runs = list(old.get("runs", []))
        runs.append({k: meta.get(k) for k in ("date", "torch_threads", "host")})
        merged = {**old, **meta, "runs": runs}
        if old.get("date"):
            merged["date"] = old["date"]  # the dataset's first date; each run is listed in runs
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(merged, indent=2, sort_keys=True, default=str))
        os.replace(tmp, self.meta_path)

    # -- rows ------------------------------------------------------------------
    def read(self) -> pd.DataFrame:
        return read_csv(self.csv)

    def done_ids(self) -> set[str]:
        if not self.csv.exists():
            return set()
        return set(self.read()["case_id"])

    def append(self, row: dict[str, Any]) -> None:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise StoreError(f"row has columns the store does not know: {sorted(unknown)}")
        self.dir.mkdir(parents=True, exist_ok=True)
        new = not self.csv.exists() or self.csv.stat().st_size == 0
        if not new:
            _check_header(self.csv)
        with open(self.csv, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in COLUMNS})
            f.flush()
            os.fsync(f.fileno())


def _check_header(path: Path) -> None:
    with open(path, newline="") as f:
        head = next(csv.reader(f), [])
    if head != COLUMNS:
        raise StoreError(f"{path}: header does not match this harness's columns; not appending to a foreign file")


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a measurements CSV, checking it is one of ours; a bad file raises ``StoreError``."""
    path = Path(path)
    if path.is_dir():
        path = path / CSV_NAME
    if not path.exists():
        raise StoreError(f"no measurements at {path}")
    try:
        df = pd.read_csv(path, dtype={"case_id": str, "shape": str, "params": str, "status": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise StoreError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise StoreError(f"{path}: not a roofsim measurements file (missing columns: {', '.join(missing)})")
    for col in ("median_s", "p10_s", "p90_s", "flops", "bytes", "working_set", "updates", "distinct_targets"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    ok = df["status"].fillna("") == "ok"
    bad = ok & ~(df["median_s"] > 0)
    if bad.any():
        first = df.loc[bad, "case_id"].iloc[0]
        raise StoreError(f"{path}: row {first!r} has status ok but no positive median_s")
    df["params"] = df.get("params", pd.Series([""] * len(df))).fillna("")
    return df.drop_duplicates("case_id", keep="first").reset_index(drop=True)
