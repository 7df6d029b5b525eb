"""Compare a user's ``torch.profiler`` Chrome trace with the simulated kernels of the same workload.

The trace is one more measurement: its ops are matched to the simulated ops in program
order within each op kind, and the error is reported per kind. On a GPU trace the CUDA
kernels (``cat == "kernel"``) are used and classified by name; on a CPU trace the
``aten::`` ops (``cat == "cpu_op"``) whose names the simulated graph also has, keeping
the outermost when one is nested in another.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from hw_models.errors import UserError

#: GPU kernel name patterns -> op kind (first match wins)
KERNEL_KINDS = [
    (re.compile(r"flash|fmha|attention|sdpa", re.I), "attention"),
    (re.compile(r"gemv", re.I), "gemv"),
    (re.compile(r"gemm|matmul|cutlass|cublas|xmma|sm\d+_xmma|ampere_.*gemm|wgmma", re.I), "matmul"),
    (re.compile(r"softmax", re.I), "softmax"),
    (re.compile(r"norm", re.I), "norm"),
    (re.compile(r"reduce|sum_kernel|mean", re.I), "reduction"),
    (re.compile(r"index_add|scatter|atomic", re.I), "scatter"),
    (re.compile(r"gather|index_select|embedding", re.I), "gather"),
    (re.compile(r"copy|cat_|memcpy", re.I), "copy"),
    (re.compile(r"elementwise|vectorized|unrolled", re.I), "elementwise"),
]


def _base(name: str) -> str:
    """``aten.mm.default`` / ``aten::mm`` -> ``mm``."""
    n = name.replace("::", ".")
    parts = n.split(".")
    if parts[0] == "aten" and len(parts) > 1:
        return parts[1]
    return parts[0]


def load_trace(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except OSError as e:
        raise UserError(f"cannot read profile {p}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: not a JSON Chrome trace ({e})") from None
    events = doc.get("traceEvents") if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        raise UserError(f"{p}: no traceEvents list; export with prof.export_chrome_trace(path)")
    out = [e for e in events if isinstance(e, dict) and e.get("ph") == "X" and "dur" in e and "ts" in e]
    if not out:
        raise UserError(f"{p}: the trace holds no complete ('X') events")
    return out


def _outermost(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events = sorted(events, key=lambda e: (e.get("tid"), float(e["ts"]), -float(e["dur"])))
    kept: list[dict[str, Any]] = []
    open_end: dict[Any, float] = {}
    for e in events:
        tid = e.get("tid")
        start, end = float(e["ts"]), float(e["ts"]) + float(e["dur"])
        if start < open_end.get(tid, -1.0):
            continue
        kept.append(e)
        open_end[tid] = end
    return sorted(kept, key=lambda e: float(e["ts"]))


def _kernel_kind(name: str) -> str:
    for rx, kind in KERNEL_KINDS:
        if rx.search(name):
            return kind
    return "elementwise"


def compare_profile(trace: str | Path, model: str, hardware: str, *, phase: str = "decode", batch: int = 1,
                    context: int = 2048, prompt: int = 512, dtype: str = "bf16") -> dict[str, Any]:
    from hw_models.catalog import load
    from simulator.costmodel import graph_costs
    from workloads import build

    events = load_trace(trace)
    system = load(hardware)
    graph = build(model, phase=phase, batch=batch, context=context, prompt=prompt, dtype=dtype)
    costs = {c.op_id: c for c in graph_costs(graph, system)}
    sim = [op for op in graph.ops if op.launches > 0 and op.kind != "view"]
    kind_of_name: dict[str, str] = {}
    for op in sim:
        kind_of_name.setdefault(_base(op.name), op.kind)
    kernels = [e for e in events if e.get("cat") == "kernel"]
    if kernels:
        prof = [(_kernel_kind(e["name"]), float(e["dur"]) * 1e-6) for e in sorted(kernels, key=lambda e: e["ts"])]
    else:
        ops = [e for e in events if e.get("cat") == "cpu_op" and _base(str(e.get("name", ""))) in kind_of_name]
        prof = [(kind_of_name[_base(e["name"])], float(e["dur"]) * 1e-6) for e in _outermost(ops)]
    if not prof:
        raise UserError(f"{trace}: no profiled op matches the simulated workload of {model!r} (wrong --model?)")
    by_kind_sim: dict[str, list[float]] = {}
    for op in sim:
        by_kind_sim.setdefault(op.kind, []).append(costs[op.id].time_s)
    by_kind_prof: dict[str, list[float]] = {}
    for kind, dur in prof:
        by_kind_prof.setdefault(kind, []).append(dur)
    by_kind = {}
    all_m, all_p, all_ape = 0.0, 0.0, []
    for kind in sorted(set(by_kind_sim) & set(by_kind_prof)):
        s, m = by_kind_sim[kind], by_kind_prof[kind]
        n = min(len(s), len(m))
        ps, ms = np.asarray(s[:n]), np.asarray(m[:n])
        ape = np.abs(ps / np.maximum(ms, 1e-12) - 1.0)
        by_kind[kind] = {
            "n": n,
            "simulated": len(s),
            "profiled": len(m),
            "measured_s": float(ms.sum()),
            "predicted_s": float(ps.sum()),
            "total_err": float(ps.sum() / max(ms.sum(), 1e-12) - 1.0),
            "median_ape": float(np.median(ape)) if n else None,
        }
        all_m += float(ms.sum())
        all_p += float(ps.sum())
        all_ape += list(ape)
    matched = sum(v["n"] for v in by_kind.values())
    return {
        "model": model,
        "hardware": system.id,
        "source": "gpu kernels" if kernels else "cpu aten ops",
        "simulated_ops": len(sim),
        "profiled_ops": len(prof),
        "matched": matched,
        "by_kind": by_kind,
        "unmatched_kinds": sorted(set(by_kind_sim) ^ set(by_kind_prof)),
        "total": {
            "n": matched,
            "measured_s": all_m,
            "predicted_s": all_p,
            "total_err": all_p / all_m - 1.0 if all_m > 0 else float("nan"),
            "median_ape": float(np.median(all_ape)) if all_ape else None,
        },
    }
