"""``roofsim simulate MODEL --hardware ID``: one model step replayed on a system over time.

Prints the step time and what it went to (table), or the stable JSON summary
(``--format json``; keys in ``simulator.result.SUMMARY_KEYS``), and optionally writes a
Chrome/Perfetto trace (``--trace-out FILE``). ``hbm`` (or ``device``) names the
device's own memory whatever its technology; other tier names come from the system.
"""

from __future__ import annotations

import argparse
import sys

from tabulate import tabulate

from hw_models import catalog, units
from roofsim.cliargs import add_format_arg, add_step_args, fill_step_args, require_positive, resident_step
from roofsim.errors import UserError
from simulator.placement import Placement

_DEVICE_ALIASES = ("hbm", "device")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("simulate", help="simulate one model step on a system (host, streams, links, tiers)")
    p.add_argument("model", metavar="MODEL", help="zoo id, path to a config.json, or pkg.mod:fn")
    p.add_argument("--hardware", required=True, metavar="ID|PATH", help="catalog id or system YAML file")
    add_step_args(p)
    p.add_argument("--launch", choices=("eager", "graph"), default="eager",
                   help="eager: host dispatch per kernel; graph: one replayed CUDA graph")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree")
    p.add_argument("--kv-tier", default="hbm", metavar="TIER", help="tier holding the KV cache: hbm (device), host, cxl, pim")
    p.add_argument("--weights-tier", default="hbm", metavar="TIER", help="tier holding the weights")
    p.add_argument("--prefetch", action="store_true", help="copy far-tier bytes ahead of use on a prefetch stream")
    p.add_argument("--engine", choices=("auto", "simpy", "fast"), default="auto")
    add_format_arg(p)
    p.add_argument("--trace-out", metavar="FILE", help="write a Chrome/Perfetto trace JSON here")
    from roofsim import scaleout

    scaleout.add_args(p)
    p.set_defaults(func=run)


def _tier(system, name: str) -> str:
    if name in _DEVICE_ALIASES or name == system.device.main_memory.name:
        return "device"
    if name not in system.tier_names:
        have = ", ".join(["hbm"] + system.tier_names)
        raise UserError(f"system {system.id!r} has no tier {name!r}; it has: {have}")
    return name


def run(args: argparse.Namespace) -> int:
    from roofsim.outputs import check_file

    given = fill_step_args(args)
    require_positive(args, ("batch", "context", "prompt", "tp"))
    if args.trace_out:
        check_file(args.trace_out, "--trace-out")
    system = catalog.load(args.hardware)
    placement = Placement(weights=_tier(system, args.weights_tier), kv_cache=_tier(system, args.kv_tier),
                          prefetch=args.prefetch).validate(system)
    from roofsim import scaleout

    if scaleout.wanted(args):
        return _scaled(args, given, system, placement)
    from workloads import build

    graph = resident_step(args, system, placement, given, build)
    from simulator import simulate

    res = simulate(graph, system, launch=args.launch, tp=args.tp, placement=placement, engine=args.engine)
    from simulator.basis import basis

    b = basis(res, system, args.launch)
    return _emit(res, args, lambda: (_table(res, args), _basis_table(b), _quant_table(res, graph.meta)), {"basis": b})


def _emit(res, args, table, extra: dict | None = None) -> int:
    """Write the Perfetto trace if asked, then the summary (with ``extra``) as JSON or ``table()``."""
    import json

    from roofsim.outputs import atomic_file

    if args.trace_out:
        with atomic_file(args.trace_out, "--trace-out") as tmp:
            res.to_perfetto(tmp)
    if args.format == "json":
        doc = json.loads(res.summary_json())
        sys.stdout.write(json.dumps({**doc, **(extra or {})}, sort_keys=True, indent=2) + "\n")
    else:
        table()
    if args.trace_out:
        print(f"wrote trace {args.trace_out} (open in https://ui.perfetto.dev)", file=sys.stderr)
    return 0


def _scaled(args, given, system, placement) -> int:
    """A step over pipeline stages, expert-parallel ranks or nodes (``roofsim.scaleout``)."""
    from roofsim import scaleout
    from simulator.layout import with_nodes
    from simulator.scaleout import simulate_scaled
    from workloads import build

    micro = scaleout.check_args(args)
    if args.nodes is not None:
        system = with_nodes(system, args.nodes)
    graph = build(args.model, phase=args.phase, batch=micro, context=args.context, prompt=args.prompt,
                  dtype=args.dtype, given=given, fusion=args.fusion)
    res = simulate_scaled(graph, system, tp=args.tp, pp=args.pp, ep=args.ep, microbatches=args.microbatches,
                          imbalance=args.ep_imbalance, launch=args.launch, placement=placement, engine=args.engine,
                          batch=args.batch)
    scaleout.check_memory(res, system)
    return _emit(res, args, lambda: scaleout.table(res))


def _table(res, args) -> None:
    s = res.summary()
    step = s["step_time_s"]
    t = lambda x: units.fmt(x, "time")  # noqa: E731
    ctx = f"context {s['context']}" if s["phase"] == "decode" else f"prompt {res.meta.get('prompt')}"
    print(f"{s['model']} {s['phase']} batch {s['batch']} {ctx} {s['dtype']} on {s['hardware']}, "
          f"fusion {s['fusion']}, launch {s['launch']}, tp {s['tp']} ({s['placement']}; engine {s['engine']})")
    rows = [
        ["step time", t(step)],
        ["tokens/s", f"{s['tokens_per_s']:.4g}" if s.get("tokens_per_s") else "-"],
        ["memory floor", f"{t(s['memory_floor_s'])} ({s['memory_floor_s'] / step:.0%} of step)" if step else "-"],
        ["compute floor", t(s["compute_floor_s"])],
        ["host busy", t(s["host_time_s"])],
        ["device busy", t(s["device_busy_s"])],
        ["kernels", f"{s['kernels']:,}"],
        ["FLOPs", f"{s['flops']:.4g}"],
        ["bytes", units.fmt(s["bytes"], "bytes")],
        ["bottleneck", s["bottleneck"]],
    ]
    if s.get("unknown_ops"):
        rows.append(["unknown ops", f"{s['unknown_ops']} (timed from bytes only)"])
    print(tabulate(rows, tablefmt="plain"))
    tbb = sorted(s["time_by_bound"].items(), key=lambda kv: -kv[1])
    print(tabulate([[k, t(v), f"{v / step:.1%}" if step else "-"] for k, v in tbb],
                   headers=["time by bound", "seconds", "share"]))



def _basis_table(b: dict) -> None:
    """What the step rests on: shares by source class and the numbers that set most of it."""
    if not b["shares"]:
        return
    from simulator.basis import SHOWN, describe

    print(f"\nbasis: {describe(b['shares'])} (simulator.basis: the spec numbers that set each part of the step, "
          "by their source)")
    print(tabulate([[n["number"], f"{n['share']:.1%}", n["class"]] for n in b["numbers"][:5] if n["share"] >= SHOWN],
                   headers=["number", "of step", "source"]))


#: how each part of a quantised kernel family's path reads in the table
_PARTS = {"fused": "fused quantised GEMMs", "dequantize": "dequantise kernels",
          "dequantized": "16-bit GEMMs after them", "quantize": "activation quantise kernels"}


def _quant_table(res, meta: dict) -> None:
    """What the precision's kernel family does, and which term dominates each part of it."""
    q = res.quantized()
    prec = meta.get("precision") or {}
    if not q or not prec:
        return
    from workloads.precision import Precision
    from workloads.quantize import group_size, packed_bytes
    from workloads.quantkernels import family

    p = Precision(**prec)
    f = family(q["kernel"])
    g = group_size(p, f)
    bits = 8 * packed_bytes(4096 * 4096, p, f, 4096) / (4096 * 4096)
    grouping = f"group {g}" if g else "per-channel scales"
    fused = f.fused_max_rows.value
    when = "every batch" if fused is None else ("never: dequantises to memory first" if fused == 0 else
                                                  f"up to {int(fused)} rows, then dequantises to memory first")
    where = "no dequantisation (native units)" if f.dequant == "none" else f"dequantises in {f.dequant}"
    print(f"\nkernel {f.name}: {where}, multiplies on {f.math} units; fused for {when}")
    print(f"weights {p.weights} at {bits:.3f} bits each with scales ({grouping}), activations {p.activations}, "
          f"KV cache {p.kv_cache}")
    step = res.step_time_s
    rows = [[_PARTS.get(k, k), v["ops"], units.fmt(v["time_s"], "time"), f"{v['time_s'] / step:.1%}" if step else "-",
             f"{v['dominant']} ({v['dominant_share']:.0%})"] for k, v in q["parts"].items()]
    print(tabulate(rows, headers=["quantised path", "ops", "busy", "of step", "dominant term"]))
