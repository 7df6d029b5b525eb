"""``roofsim roofline MODEL --hardware ID``: the analytic roofline of one model step.

Writes ``DIR/ops.csv`` (one row per op: FLOPs, bytes, intensity, modelled time, roofline
bound, the term that bounds it) and ``DIR/roofline.png``, and prints the totals and the
ops that take the most time. Every op is priced alone: no launch overhead, no overlap.
"""

from __future__ import annotations

import argparse

from tabulate import tabulate

from hw_models import catalog, units
from roofsim.cliargs import add_step_args, fill_step_args, require_positive, resident_step
from simulator.placement import Placement


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("roofline", help="per-op roofline of one model step on one system (CSV + chart)")
    p.add_argument("model", metavar="MODEL", help="zoo id, path to a config.json, or pkg.mod:fn")
    p.add_argument("--hardware", required=True, metavar="ID|PATH", help="catalog id or system YAML file")
    add_step_args(p)
    p.add_argument("--top", type=int, default=10, help="how many of the slowest ops to print")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree: price one device's shard")
    p.add_argument("--weights-tier", default="device", metavar="TIER",
                   help="tier holding the weights (default: device)")
    p.add_argument("--kv-tier", default="device", metavar="TIER", help="tier holding the KV cache (default: device)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.set_defaults(func=run)


def _build(model: str, **kw):
    from workloads import build

    return build(model, **kw)


def run(args: argparse.Namespace) -> int:
    from roofsim.outputs import atomic_file, check_dir, locked_dir

    given = fill_step_args(args)
    require_positive(args, ("batch", "context", "prompt", "top", "tp"))
    check_dir(args.out, "--out")
    system = catalog.load(args.hardware)
    placement = Placement(weights=args.weights_tier, kv_cache=args.kv_tier).validate(system)
    graph = resident_step(args, system, placement, given, _build)
    if args.tp > 1:
        from workloads.tensor_parallel import shard

        graph = shard(graph, args.tp)

    from reports.roofline_plot import plot_roofline
    from simulator.roofline import analyze, top, totals

    df = analyze(graph, system, placement)
    tot = totals(df)
    meta = graph.meta
    step = ("" if meta.get("phase") == "forward" else
            f"{'context ' + str(args.context) if args.phase == 'decode' else 'prompt ' + str(args.prompt)} ")
    title = (f"{meta.get('model', args.model)} {meta.get('phase', args.phase)} batch {args.batch} {step}"
             f"{args.dtype}{f' tp {args.tp}' if args.tp > 1 else ''} on {system.name}")
    # one writer per folder; each file is replaced whole, so a reader never sees half of one
    with locked_dir(args.out, "--out") as out:
        with atomic_file(out / "ops.csv", "--out") as tmp:
            df.to_csv(tmp, index=False)
        with atomic_file(out / "roofline.png", "--out") as tmp:
            plot_roofline(df, system, tmp, title=title)

    print(title)
    print(f"ops {tot['ops']}  kernels {tot['kernels']}  unknown ops {tot['unknown_ops']}")
    print(f"sum of op times  {units.fmt(tot['time_s'], 'time')}  (roofline floor {units.fmt(tot['roofline_s'], 'time')})")
    print(f"FLOPs            {tot['flops']:.4g}  ({units.fmt(tot['achieved_flop_s'], 'flop_rate')} attained)")
    print(f"bytes            {units.fmt(tot['bytes'], 'bytes')}")
    share = ", ".join(f"{b} {t / tot['time_s']:.0%}" for b, t in tot["time_by_bound"].items() if tot["time_s"] > 0)
    print(f"time by bound    {share}")
    if args.top:
        rows = [
            [r.id, r.name, r.kind, r.module, units.fmt(r.time_s, "time"), f"{r.share:.1%}", r.bound]
            for r in top(df, args.top).itertuples()
        ]
        print(tabulate(rows, headers=["id", "op", "kind", "module", "time", "share", "bound"]))
    print(f"wrote {out / 'ops.csv'} and {out / 'roofline.png'}")
    return 0
