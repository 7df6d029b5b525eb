"""The CLI's side of scale-out (``--nodes``, ``--pp``, ``--ep``): flags, checks and the table.

``simulate`` hands a step here when it spans pipeline stages, expert-parallel ranks or
nodes (``simulator.scaleout``). ``--batch`` is the whole step's sequences: each of the
``M`` micro-batches of each of the ``ep`` attention-data-parallel ranks runs
``batch / (M x ep)`` of them.
"""

from __future__ import annotations

import argparse

from tabulate import tabulate

from hw_models import units
from roofsim.errors import UserError


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pp", type=int, default=1, help="pipeline-parallel stages (layers split balanced by time)")
    p.add_argument("--ep", type=int, default=1, help="expert-parallel degree (MoE models; attention data-parallel)")
    p.add_argument("--nodes", type=int, default=None,
                   help="nodes of the system joined by its inter-node network (default: the spec's, 1)")
    p.add_argument("--microbatches", type=int, default=None, help="micro-batches per step under --pp (default: --pp, or the most <= --pp that divide the batch)")
    p.add_argument("--ep-imbalance", type=float, default=None,
                   help="busiest expert-parallel rank's load over the mean (default in simulator/scaleout.yaml)")


def wanted(args: argparse.Namespace) -> bool:
    return args.pp != 1 or args.ep != 1 or args.nodes is not None or args.microbatches is not None \
        or args.ep_imbalance is not None


def check_args(args: argparse.Namespace) -> int:
    """Micro-batch size from ``--batch``; one-line errors for impossible flags."""
    for flag in ("pp", "ep"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be a positive integer, got {getattr(args, flag)}")
    if args.nodes is not None and args.nodes < 1:
        raise UserError(f"--nodes must be a positive integer, got {args.nodes}")
    if args.microbatches is not None and args.microbatches < 1:
        raise UserError(f"--microbatches must be a positive integer, got {args.microbatches}")
    if args.microbatches is not None and args.pp == 1 and args.microbatches != 1:
        raise UserError("--microbatches needs --pp > 1 (micro-batches flow through pipeline stages)")
    if args.ep_imbalance is not None and not (args.ep_imbalance >= 1.0 and args.ep_imbalance < 1e3):
        raise UserError(f"--ep-imbalance must be a number in [1, 1000) (max over mean rank load), got {args.ep_imbalance}")
    if args.ep_imbalance is not None and args.ep == 1:
        raise UserError("--ep-imbalance needs --ep > 1")
    if args.batch % args.ep:
        raise UserError(f"--batch {args.batch} must be a multiple of --ep {args.ep} (each expert-parallel rank "
                        "runs attention for its own sequences)")
    # by default one micro-batch per stage, fewer when the batch cannot be cut that finely
    m = args.microbatches or max(k for k in range(1, args.pp + 1) if (args.batch // args.ep) % k == 0)
    args.microbatches = m
    split = m * args.ep
    if args.batch % split:
        raise UserError(f"--batch {args.batch} must be a multiple of the {m} micro-batch(es) x --ep {args.ep} = {split} "
                        "it is split into")
    return args.batch // split


def check_memory(res, system) -> None:
    """Each stage's device must hold its weights, KV cache and activations."""
    cap = res.capacity
    for s, m in enumerate(res.memory):
        need = sum(m.values())
        if need > cap:
            raise UserError(f"does not fit: stage {s} (layers {res.starts[s]}-"
                            f"{([*res.starts[1:], res.meta['layers_total']])[s] - 1}) needs "
                            f"{need / 2**30:.1f} GiB per device, {system.device.main_memory.name} has {cap / 2**30:.1f} GiB; "
                            "raise --pp, --tp or --ep, or lower --batch/--context")


def table(res) -> None:
    s = res.summary()
    lay = res.layout
    t = lambda x: units.fmt(x, "time")  # noqa: E731
    step = s["step_time_s"]
    m = res.meta
    ctx = f"context {m.get('context')}" if m.get("phase") == "decode" else f"prompt {m.get('prompt')}"
    print(f"{m['model']} {m['phase']} batch {m['batch']} ({m['microbatches']} micro-batch(es) of {m['microbatch']}"
          f"{' per EP rank' if lay.ep > 1 else ''}) {ctx} {m['dtype']} on {m['hardware']}, fusion {m['fusion']}, "
          f"launch {m['launch']}")
    print(f"layout: tp {lay.tp} x ep {lay.ep} x pp {lay.pp} = {lay.world} devices on {m['nodes']} node(s) of "
          f"{m['devices_per_node']} (engine {s['engine']})")
    rows = [
        ["step time", f"{t(step)} (one batch through the pipeline)"],
        ["steady step", f"{t(s['steady_step_s'])} (consecutive steps overlapped, as a serving engine runs them)"],
        ["tokens/s", f"{s['tokens_per_s']:.4g} (steady {s['steady_tokens_per_s']:.4g})" if s.get("tokens_per_s") else "-"],
        ["pipeline bubble", f"{s['bubble_share']:.1%} of the step"],
        ["kernels", f"{s['kernels']:,}"],
        ["FLOPs", f"{s['flops']:.4g}"],
        ["bottleneck", s["bottleneck"]],
    ]
    if m.get("ep_imbalance"):
        rows.append(["EP imbalance", f"{m['ep_imbalance']:g} (busiest rank's routed load over the mean)"])
    if s.get("unknown_ops"):
        rows.append(["unknown ops", f"{s['unknown_ops']} (timed from bytes only)"])
    print(tabulate(rows, tablefmt="plain"))
    srows = []
    for k, st in enumerate(s["stages"]):
        lo, hi = st["layers"]
        rank = lay.stage_rank(k)
        mem = st["memory_bytes"]
        srows.append([k, f"{lo}-{hi - 1}", f"{rank} (node {lay.node_of(rank)})", t(st["microbatch_s"]),
                      f"{t(st['send_s'])} {st['link']}" if st["link"] else "-",
                      f"{mem['weights'] / 2**30:.1f}", f"{mem['kv_cache'] / 2**30:.2f}",
                      f"{mem['activations'] / 2**30:.2f}",
                      f"{st['time_by_bound'].get('pipeline_bubble', 0.0) / step:.1%}" if step else "-"])
    print()
    print(tabulate(srows, headers=["stage", "layers", "device", "micro-batch", "send", "weights GiB", "KV GiB",
                                   "act GiB", "bubble"]))
    sys_ = res.stages[0]
    del sys_
    lrows = []
    for level, v in s["links"].items():
        lrows.append([level, units.fmt(v["bytes"], "bytes"), t(v["seconds"]), f"{v['seconds'] / step:.1%}" if step else "-"])
    print()
    print(tabulate(lrows, headers=["link level", "bytes/device", "busy", "of step"]))
    tbb = sorted(s["time_by_bound"].items(), key=lambda kv: -kv[1])
    print()
    print(tabulate([[k, t(v), f"{v / step:.1%}" if step else "-"] for k, v in tbb],
                   headers=["time by bound (mean over devices)", "seconds", "share"]))
