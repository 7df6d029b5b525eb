"""Run cases and append each measurement to the store as soon as it finishes."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from . import sysinfo
from .cases import Case
from .store import Store, StoreError
from .suites import cases as suite_cases
from .timing import CacheFlusher, measure


class DeviceError(ValueError):
    """The device asked for is not present on this machine."""

    user_facing = True


def check_device(device: str, *, present: bool = True) -> str:
    """``device`` if it names cpu or cuda; with ``present``, also refuse a GPU this machine lacks."""
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if present and not torch.cuda.is_available():
            raise DeviceError(f"--device {device}: no CUDA GPU is available on this machine (torch {torch.__version__})")
        return device
    raise DeviceError(f"--device {device!r}: expected cpu or cuda")


#: repeats / warm-up / minimum time per repeat, per mode
# a repeat batches calls only up to ``min_repeat_s``: longer calls are timed one by one, so a
# preemption by another process spoils one sample, not a whole batch, and the median drops it
SETTINGS = {
    "tiny": {"repeats": 3, "warmup": 1, "min_repeat_s": 1e-4},
    "quick": {"repeats": 15, "warmup": 2, "min_repeat_s": 2e-4},
    "full": {"repeats": 31, "warmup": 3, "min_repeat_s": 5e-4},
}
MODEL_SETTINGS = {"tiny": 3, "quick": 5, "full": 7}


def _flush_bytes(device: str) -> int:
    if device.startswith("cuda"):
        return 256 * 1024 * 1024
    llc = max((c["size"] for c in sysinfo.cpu_caches()), default=32 * 1024 * 1024)
    return 4 * llc


def measure_case(case: Case, device: str, mode: str, flusher: CacheFlusher | None) -> dict[str, Any]:
    work = case.work()
    row: dict[str, Any] = {
        "case_id": case.id,
        "family": case.family,
        "kind": case.kind,
        "op": case.op,
        "shape": case.shape_json(),
        "dtype": case.dtype,
        "params": json.dumps(case.params, sort_keys=True) if case.params else "",
        "device": device,
        "threads": torch.get_num_threads(),
        "cold": bool(case.params.get("cold", False)),
        **work,
    }
    try:
        fn, args = case.make(device)
    except ImportError as e:
        return {**row, "status": f"skipped: needs {e.name or e}"}
    settings = dict(SETTINGS[mode])
    if case.family == "model":
        settings = {"repeats": MODEL_SETTINGS[mode], "warmup": 2, "min_repeat_s": 0.0}
    elif case.family == "framework":
        settings = {"repeats": 3 * MODEL_SETTINGS[mode], "warmup": 3, "min_repeat_s": 0.0}
    cold = flusher if case.params.get("cold") else None
    try:
        with torch.inference_mode():
            t = measure(fn, args, device, flush=cold, **settings)
    except (RuntimeError, ValueError, NotImplementedError) as e:
        # an op this build cannot run (a dtype without a kernel, out of memory) is recorded, not fatal
        msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        return {**row, "status": f"error: {msg}"}
    if case.family == "graph":
        # one call replays every node: report the time per node
        nodes = case.shape["nodes"]
        t.median_s, t.p10_s, t.p90_s = (v / nodes for v in (t.median_s, t.p10_s, t.p90_s))
    del fn, args
    if case.family in ("model", "framework"):
        gc.collect()
    return {**row, "status": "ok", **t.as_row()}


def run(
    device: str,
    out: str | Path,
    *,
    mode: str = "quick",
    case_list: Iterable[Case] | None = None,
    progress: Callable[[Case, dict[str, Any] | None], None] | None = None,
    threads: int | None = None,
) -> Store:
    """Measure every case not already in ``out`` and append its row; returns the store.

    ``threads`` sets ``torch.set_num_threads`` for the run (recorded in every row).
    """
    device = check_device(device)
    if threads is not None:
        if threads < 1:
            raise DeviceError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    store = Store(out)
    with store.lock():
        dropped = store.repair()
        if dropped:
            print(f"roofsim: warning: {dropped}", file=sys.stderr)
        if store.done_ids() and not store.meta_path.exists():
            raise StoreError(f"{store.dir} holds measurements but no {store.meta_path.name}: cannot tell which "
                             "machine measured them; use another --out")
        store.write_meta({**sysinfo.collect(device), "mode": mode})
        done = store.done_ids()
        todo = [c for c in (case_list if case_list is not None else suite_cases(mode, device))]
        flusher = None
        if any(c.params.get("cold") for c in todo if c.id not in done):
            flusher = CacheFlusher(device, _flush_bytes(device))
        torch.manual_seed(0)
        for case in todo:
            if case.id in done:
                if progress:
                    progress(case, None)
                continue
            row = measure_case(case, device, mode, flusher)
            store.append(row)
            done.add(case.id)
            if progress:
                progress(case, row)
    return store
