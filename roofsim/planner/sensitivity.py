"""Which datasheet number matters: a tornado table of TPOT and TTFT under ±20% changes.

Each parameter group of one system is moved down and up by ``delta`` (other things
held), and the configuration is re-simulated. Groups: each device memory level's
bandwidth, each tier's bandwidth and link bandwidth, the interconnect bandwidth, the
matrix and vector peak of the run's dtype (and fp32 vector), host dispatch overhead,
graph launch and per-node cost, and the device kernel latency. "+" means the number
grows by ``delta`` (more bandwidth, but also more latency). Rows are sorted by swing:
the larger of |TPOT+ − TPOT−| and |TTFT+ − TTFT−|, in percent of the base.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from hw_models.quantity import Quantity
from hw_models.spec import SystemSpec

from . import evaluate as ev
from .whatif import _starts, _walk

#: the tornado table's columns after its model/hardware keys
TORNADO_COLUMNS = ["param", "tpot_minus_pct", "tpot_plus_pct", "ttft_minus_pct", "ttft_plus_pct", "swing_pct"]

def parameters(system: SystemSpec, dtype: str) -> list[str]:
    """Dotted --set paths of the parameter groups perturbed for ``system``."""
    dev = system.device
    out = [f"{lv.name}.bandwidth" for lv in dev.memory]
    for t in system.tiers:
        out += [f"{t.name}.bandwidth", f"{t.name}.link.bandwidth"]
    if system.interconnect is not None:
        out.append("interconnect.bandwidth")
    for unit, table in (("matrix", dev.matrix), ("vector", dev.vector)):
        for dt in dict.fromkeys((dtype, "fp32")):
            if dt in table and not (unit == "matrix" and dt == "fp32" and dtype != "fp32"):
                out.append(f"device.{unit}.{dt}.peak")
    out += ["host.dispatch_overhead", "host.graph_launch", "host.graph_node_cost", "device.kernel_latency"]
    return out


def perturb(system: SystemSpec, path: str, factor: float) -> SystemSpec:
    """A copy of ``system`` with the quantity at ``path`` multiplied by ``factor``."""
    out = system.model_copy(deep=True)
    comps = path.split(".")
    for obj, _ in _starts(out, comps[0]):
        rest = comps if obj is out else comps[1:]
        try:
            parent, name, q = _walk(obj, rest, path)
        except ValueError:
            continue
        if isinstance(q, Quantity):
            new = type(q).model_construct(value=q.value * factor, source=f"what-if: sensitivity x{factor:g}")
            setattr(parent, name, new)
            return out
    raise KeyError(path)


def sensitivity(
    s: ev.Settings, model: str, hw: str, tp: int, batch: int, context: int, delta: float = 0.2
) -> pd.DataFrame:
    """Tornado table for one configuration: param, TPOT −/+ %, TTFT −/+ %, swing %."""
    base = ev.evaluate(s, model, hw, tp, batch, context)
    if not base["fits"]:
        return pd.DataFrame(columns=["hardware", *TORNADO_COLUMNS])
    rows: list[dict[str, Any]] = []
    for path in parameters(s.systems[hw], s.dtype):
        moved = {}
        for sign, f in (("minus", 1 - delta), ("plus", 1 + delta)):
            systems = dict(s.systems)
            systems[hw] = perturb(systems[hw], path, f)
            keys = dict(s.keys)
            keys[hw] = f"{keys.get(hw, hw)}:{path}x{f:g}"
            r = ev.evaluate(replace(s, systems=systems, keys=keys), model, hw, tp, batch, context)
            moved[f"tpot_{sign}_pct"] = 100.0 * (r["tpot_ms"] / base["tpot_ms"] - 1)
            moved[f"ttft_{sign}_pct"] = 100.0 * (r["ttft_ms"] / base["ttft_ms"] - 1)
        swing = max(
            abs(moved["tpot_plus_pct"] - moved["tpot_minus_pct"]),
            abs(moved["ttft_plus_pct"] - moved["ttft_minus_pct"]),
        )
        rows.append({"hardware": hw, "param": path, **moved, "swing_pct": swing})
    df = pd.DataFrame(rows)
    return df.sort_values(["swing_pct", "param"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )
