"""The plain-language paragraph at the top of a report, computed from the numbers."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from hw_models.resource_id import try_parse, try_parse_bound


def describe_bound(bound: str) -> str:
    """An engine binding term ("host", "launch", "dev0.hbm", "host.link.h2d", "compute") in words."""
    b = str(bound).lower()
    if b in ("host", "launch", "dispatch", "host dispatch", "host/launch") or b.startswith(("host.dispatch", "launch")):
        return "host dispatch (launch overhead)"
    # the simulator's own labels and ids; the text rules below also read other tools' frames
    label, rid = try_parse_bound(b), try_parse(b)
    if label is not None and label.term == "link":
        return f"the {label.name} link"
    if "link" in b or b.startswith("interconnect"):
        return f"the {b} link" if b != "link" else "host-device link transfers"
    if b == "memory":
        return "memory bandwidth"
    if b == "latency":
        return "fixed per-kernel latency"
    m = re.fullmatch(r"(?:dev\d+\.|memory[:.]?)?(l1|l2|l3|llc|smem|hbm|dram|gddr|lpddr)\w*", b)
    if m:
        return f"{m.group(1).upper()} bandwidth"
    if rid is not None and rid.kind == "tier":
        return f"{rid.name} tier memory bandwidth"
    if b.startswith("compute") or b in ("matrix", "vector", "flops"):
        return f"{b.split(':', 1)[1]} compute throughput" if ":" in b else "compute throughput"
    if "atomic" in b:
        return "atomic contention"
    if "pim" in b:
        return "processing-in-memory"
    if "collective" in b:
        return "collective communication"
    return b


def _ms(s: float) -> str:
    ms = s * 1e3
    return f"{ms:.3g} ms" if ms >= 1 else f"{s * 1e6:.3g} µs"


def _rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def summarize(summary: dict[str, Any], **kw: Any) -> str:
    """One paragraph: what ran, how long, what bound it and how far from the floors it is."""
    return " ".join(sentences(summary, **kw))


def sentences(summary: dict[str, Any], *, device_idle_frac: float, by_kind: pd.DataFrame | None = None,
              device_word: str = "GPU", prompt: int | None = None) -> list[str]:
    """The summary's sentences; the first is the verdict (time, bound, idle share)."""
    phase = summary.get("phase", "step")
    batch = int(summary.get("batch") or 1)
    step = float(summary["step_time_s"])
    head = f"{phase} of {summary.get('model', 'the model')} on {summary.get('hardware', 'the system')}"
    cfg = f"batch {batch}, context {summary.get('context')}, {summary.get('dtype')}, {summary.get('launch')} launch"
    if summary.get("tp", 1) and int(summary.get("tp", 1)) > 1:
        cfg += f", TP {summary['tp']}"
    if phase == "decode":
        rate = f"{_ms(step)}/token ({_rate(batch / step)} tokens/s)" if step > 0 else "no time"
    elif phase == "prefill" and prompt:
        rate = f"{_ms(step)} to first token for {prompt} prompt tokens ({_rate(batch * prompt / step)} tokens/s)"
    else:
        rate = _ms(step)
    bottleneck = describe_bound(summary.get("bottleneck", "unknown"))
    parts = [f"{head} ({cfg}): {rate}, bound by {bottleneck}"]
    parts[0] += f": the {device_word} is idle {device_idle_frac:.0%} of the step."
    mem, comp = float(summary.get("memory_floor_s") or 0), float(summary.get("compute_floor_s") or 0)
    floor = max(mem, comp)
    if floor > 0 and step > 0:
        which = "memory" if mem >= comp else "compute"
        parts.append(
            f"The {which} floor is {_ms(floor)} (memory {_ms(mem)}, compute {_ms(comp)}): the step takes "
            f"{step / floor:.1f}× its floor, {floor / step:.0%} of roofline speed."
        )
    host, busy = float(summary.get("host_time_s") or 0), float(summary.get("device_busy_s") or 0)
    kernels = summary.get("kernels")
    if host > 0 and kernels:
        parts.append(
            f"The host spends {_ms(host)} issuing {int(kernels):,} kernels ({_ms(host / int(kernels))} each) "
            f"while the device is busy {_ms(busy)}."
        )
        if host > busy:
            parts.append("Issuing the kernels takes longer than running them, so the device waits on the host: "
                         "graph replay or fusing small ops would cut the step.")
    if by_kind is not None and len(by_kind):
        work = by_kind[~by_kind.iloc[:, 0].astype(str).str.startswith("idle")]
        if len(work):
            top = work.iloc[0]
            parts.append(f"The largest share of device time goes to {top.iloc[0]} ops ({top['share']:.0%} of the step).")
    return parts
