"""Hand-made simulated steps, shaped like ``SimResult.to_pandas()``, so the report's
figures can be tested without the engine."""

from __future__ import annotations

import pandas as pd

KINDS = ("matmul", "norm", "attention", "elementwise")
BOUNDS = {"matmul": "dev0.hbm", "norm": "launch", "attention": "dev0.hbm", "elementwise": "launch"}


def fake_step(n_ops: int = 12, dispatch_s: float = 5e-6, kernel_s: tuple[float, ...] = (8e-6, 2e-6, 4e-6, 1e-6),
              link: bool = True, streams: int = 1) -> tuple[dict, pd.DataFrame]:
    """Host issues ops in order (``dispatch_s`` each); a stream starts an op at max(issue, previous end)."""
    rows, t_host, ends = [], 0.0, [0.0] * streams
    busy = 0.0
    for i in range(n_ops):
        kind = KINDS[i % len(KINDS)]
        d = kernel_s[i % len(kernel_s)]
        rows.append({"op_id": i, "name": f"aten::{kind}", "kind": kind, "resource": "host",
                     "start_s": t_host, "end_s": t_host + dispatch_s, "bound": "host"})
        t_host += dispatch_s
        s = i % streams
        start = max(t_host, ends[s])
        ends[s] = start + d
        busy += d
        rows.append({"op_id": i, "name": f"aten::{kind}", "kind": kind, "resource": f"dev0.stream{s}",
                     "start_s": start, "end_s": start + d, "bound": BOUNDS[kind]})
        rows.append({"op_id": i, "name": f"aten::{kind}", "kind": kind, "resource": "dev0.hbm",
                     "start_s": start, "end_s": start + d, "bound": BOUNDS[kind]})
    if link:
        rows.append({"op_id": n_ops, "name": "copy_h2d", "kind": "transfer", "resource": "host.link.h2d",
                     "start_s": 0.0, "end_s": 10e-6, "bound": "host.link.h2d"})
    df = pd.DataFrame(rows)
    step = float(df["end_s"].max())
    summary = {"model": "tiny", "hardware": "h100-sxm", "phase": "decode", "batch": 1, "context": 128,
               "dtype": "bf16", "launch": "eager", "tp": 1, "step_time_s": step, "flops": 1e9, "bytes": 1e8,
               "memory_floor_s": busy * 0.5, "compute_floor_s": busy * 0.1, "host_time_s": n_ops * dispatch_s,
               "device_busy_s": busy, "kernels": n_ops, "bottleneck": "host",
               "time_by_bound": {"host": step - busy, "dev0.hbm": busy}}
    return summary, df

