"""``roofsim hardware list|show``: what the catalog holds, and every number of one system
with its unit and its source."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import BaseModel
from tabulate import tabulate

from hw_models import catalog, units
from hw_models.quantity import EfficiencyCurve, Quantity, Switch
from hw_models.spec import SystemSpec, TileSpec
from roofsim.cliargs import add_command_group, add_subcommand

#: long sources wrap in the table instead of pushing it off the screen
SOURCE_WIDTH = 72


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command_group(subparsers, "hardware", "list the hardware catalog or show one system's numbers")
    add_subcommand(sub, "list", "one row per catalog system, plus host and tier components", run_list)
    sh = add_subcommand(sub, "show", "every number of one system, with unit and source", run_show)
    sh.add_argument("hardware", metavar="ID|PATH", help="catalog id (see 'roofsim hardware list') or a YAML file")


# --- list -------------------------------------------------------------------------------


def matrix_peak(system: SystemSpec) -> tuple[str, float]:
    """The dtype and rate a reader compares machines by: bf16 if the device has it, else the fastest."""
    m = system.device.matrix
    dtype = "bf16" if "bf16" in m else max(m, key=lambda d: m[d].peak.value)
    return dtype, m[dtype].peak.value


def system_row(system: SystemSpec) -> dict[str, Any]:
    dtype, peak = matrix_peak(system)
    mem = system.device.main_memory
    return {
        "id": system.id,
        "name": system.name,
        "device": f"{system.device.name} ({system.device.kind})",
        "devices": system.num_devices,
        "matrix_dtype": dtype,
        "matrix_peak_flops": peak,
        "memory": mem.name,
        "memory_bytes": mem.capacity.value,
        "memory_bandwidth": mem.bandwidth.value,
        "tiers": system.tier_names,
    }


def _host_row(hid: str) -> dict[str, Any]:
    h = catalog.load_host(hid)
    return {
        "id": hid,
        "name": h.name,
        "cores": h.cores.value,
        "dispatch_overhead_s": h.dispatch_overhead.value,
        "memory_bytes": h.memory_capacity.value,
        "memory_bandwidth": h.memory_bandwidth.value,
    }


def _tier_row(tid: str) -> dict[str, Any]:
    t = catalog.load_tier(tid)
    return {
        "id": tid,
        "name": t.name,
        "kind": t.kind,
        "capacity_bytes": t.capacity.value,
        "bandwidth": t.bandwidth.value,
        "link": t.link.name,
        "link_bandwidth_per_direction": t.link.bandwidth.value,
        "pim_internal_bandwidth": t.pim.internal_bandwidth.value if t.pim else None,
    }


def catalog_listing() -> dict[str, list[dict[str, Any]]]:
    return {
        "systems": [system_row(catalog.load(s)) for s in catalog.list_systems()],
        "hosts": [_host_row(h) for h in catalog.list_hosts()],
        "tiers": [_tier_row(t) for t in catalog.list_tiers()],
    }


def run_list(args: argparse.Namespace) -> int:
    data = catalog_listing()
    if getattr(args, "format", "table") == "json":
        print(json.dumps(data, indent=2))
        return 0
    systems = [
        [
            r["id"],
            r["name"],
            r["device"],
            r["devices"],
            f"{units.fmt(r['matrix_peak_flops'], 'flop_rate')} {r['matrix_dtype']}",
            f"{_bytes(r['memory_bytes'])} {r['memory']}",
            units.fmt(r["memory_bandwidth"], "bandwidth"),
            ", ".join(r["tiers"]) or "-",
        ]
        for r in data["systems"]
    ]
    print("Systems (per device; 'devices' per node)")
    print(tabulate(systems, headers=["id", "name", "device", "devices", "matrix peak", "memory", "bandwidth", "tiers"]))
    hosts = [
        [
            r["id"],
            r["name"],
            f"{r['cores']:g}",
            units.fmt(r["dispatch_overhead_s"], "time"),
            _bytes(r["memory_bytes"]),
            units.fmt(r["memory_bandwidth"], "bandwidth"),
        ]
        for r in data["hosts"]
    ]
    print("\nHosts (used with host: <id>)")
    print(tabulate(hosts, headers=["id", "name", "cores", "eager dispatch/op", "memory", "bandwidth"]))
    tiers = [
        [
            r["id"],
            r["name"],
            r["kind"],
            _bytes(r["capacity_bytes"]),
            units.fmt(r["bandwidth"], "bandwidth"),
            f"{r['link']} {units.fmt(r['link_bandwidth_per_direction'], 'bandwidth')}/dir",
            units.fmt(r["pim_internal_bandwidth"], "bandwidth") if r["pim_internal_bandwidth"] else "-",
        ]
        for r in data["tiers"]
    ]
    print("\nTiers (used with attach: [<id>])")
    print(tabulate(tiers, headers=["id", "tier", "kind", "capacity", "bandwidth", "link", "pim internal"]))
    return 0


# --- show -------------------------------------------------------------------------------


def _bytes(value: float) -> str:
    """Binary units as ``units.fmt`` writes them, plus the decimal figure datasheets quote."""
    text = units.fmt(value, "bytes")
    for scale, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB")):
        if value >= scale and value % (scale / 100) == 0 and value % 2**20 != 0:
            return f"{text} ({value / scale:.4g} {unit})"
    return text


def _fmt_quantity(q: Quantity) -> str:
    return _bytes(q.value) if q.dimension == "bytes" else units.fmt(q.value, q.dimension)


def _fmt_curve(c: EfficiencyCurve, size_dimension: str) -> str:
    """``size: efficiency`` pairs; sizes are bytes for memories and links, FLOPs for compute."""
    if len(c.points) == 1:
        return f"{c.points[0][1]:g} (flat)"

    def size(x: float) -> str:
        return _bytes(x).split(" (")[0] if size_dimension == "bytes" else f"{x:.3g}".replace("e+0", "e").replace("e+", "e") + " FLOP"

    return ", ".join(f"{size(x)}: {e:g}" for x, e in c.points)


def flatten(obj: Any, path: str) -> list[tuple[str, str, str]]:
    """(field path, value with unit, source) for every leaf of a spec, in document order."""
    if isinstance(obj, Quantity):
        return [(path, _fmt_quantity(obj), obj.source)]
    if isinstance(obj, EfficiencyCurve):
        by_bytes = "memory" in path or "link" in path
        return [(path, _fmt_curve(obj, "bytes" if by_bytes else "flop"), obj.source)]
    if isinstance(obj, Switch):
        return [(path, "yes" if obj.value else "no", obj.source)]
    if isinstance(obj, TileSpec):
        shapes = ", ".join(f"{m}x{n}" for m, n in obj.shapes)
        return [(path, shapes + (" (split-K)" if obj.split_k else ""), obj.source)]
    if isinstance(obj, BaseModel):
        rows: list[tuple[str, str, str]] = []
        for name in type(obj).model_fields:
            value = getattr(obj, name)
            if value is not None and value != "":
                rows += flatten(value, f"{path}.{name}" if path else name)
        return rows
    if isinstance(obj, dict):
        return [r for k, v in obj.items() for r in flatten(v, f"{path}.{k}")]
    if isinstance(obj, list):
        if obj and all(isinstance(x, str) for x in obj):
            return [(path, ", ".join(obj), "")]
        return [r for i, v in enumerate(obj) for r in flatten(v, f"{path}[{getattr(v, 'name', i)}]")]
    return [(path, str(obj), "")]


def sections(system: SystemSpec) -> list[tuple[str, list[tuple[str, str, str]]]]:
    dev = system.device
    compute = [r for name in ("name", "kind", "compute_units", "kernel_latency", "serial_dispatch", "overlap",
                              "tiles", "operand_level", "matrix", "vector", "atomics")
               for r in flatten(getattr(dev, name), name)]
    return [
        ("system", [("id", system.id, ""), ("name", system.name, ""), ("description", system.description, ""),
                    ("num_devices", str(system.num_devices), "")]),
        ("host", flatten(system.host, "")),
        ("device compute (per device)", compute),
        ("memory levels (per device, nearest first)", flatten(dev.memory, "memory")),
        ("tiers and links", flatten(system.tiers, "tiers") or [("tiers", "none", "")]),
        ("interconnect (device to device)",
         flatten(system.interconnect, "") if system.interconnect else [("interconnect", "none", "")]),
    ]


def run_show(args: argparse.Namespace) -> int:
    system = catalog.load(args.hardware)
    if args.format == "json":
        print(json.dumps(system.model_dump(mode="json"), indent=2))
        return 0
    for i, (title, rows) in enumerate(sections(system)):
        print(("\n" if i else "") + f"== {title} ==")
        print(tabulate([list(r) for r in rows], headers=["field", "value", "source"],
                       maxcolwidths=[None, 40, SOURCE_WIDTH]))
    return 0
