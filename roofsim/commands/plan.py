"""``roofsim plan``: capacity planning over models × hardware × tp × batch × context.

Prints (or writes with ``--out``) every configuration, feasible or not, then the best
configuration per hardware under the SLOs, then with ``--sensitivity`` a tornado table
for each hardware's best configuration. ``tp`` larger than a system's device count is
listed as infeasible, not rejected, so one ``--tp`` list serves 1- and 8-device systems.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import pandas as pd
from tabulate import tabulate

from roofsim.cliargs import add_precision_args, fusion_policies, resolve_precision
from roofsim.commands.serve import add_scheduler_args
from roofsim.errors import UserError

TABLE_COLUMNS = [
    "model",
    "hardware",
    "tp",
    "pp",
    "ep",
    "nodes",
    "batch",
    "context",
    "fits",
    "device_needed_gib",
    "device_capacity_gib",
    "ttft_ms",
    "tpot_ms",
    "tokens_per_s_per_device",
    "tokens_per_s_per_system",
    "bottleneck",
    "measured_share",
    "cost_per_mtok",
    "meets_slo",
    "reason",
]


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def _list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _prices(text: str) -> dict[str, float]:
    out = {}
    for kv in _list(text):
        if "=" not in kv:
            raise argparse.ArgumentTypeError(f"expected HARDWARE=PRICE pairs, got {kv!r}")
        k, v = kv.split("=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"price for {k.strip()} is not a number: {v!r}") from None
        if not (math.isfinite(out[k.strip()]) and out[k.strip()] >= 0):
            raise argparse.ArgumentTypeError(f"price for {k.strip()} must be a finite number >= 0, got {v!r}")
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plan",
        help="capacity planning: which hardware, how many devices, what batch, what cost",
        description=__doc__,
    )
    p.add_argument(
        "models", type=_list, metavar="MODEL[,MODEL...]", help="zoo ids, config.json paths or pkg.mod:fn"
    )
    p.add_argument("--hardware", type=_list, required=True, help="catalog ids or YAML paths, comma-separated")
    p.add_argument("--tp", type=_ints, default=[1, 2, 4, 8], help="tensor-parallel degrees (default 1,2,4,8)")
    p.add_argument("--pp", type=_ints, default=[1], help="pipeline-parallel stages to search (default 1)")
    p.add_argument("--ep", type=_ints, default=[1], help="expert-parallel degrees to search, MoE models (default 1)")
    p.add_argument("--nodes", type=int, default=None,
                   help="nodes per layout under --pp/--ep (default: as many as the layout needs)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--batch", type=_ints, default=None, help="batch sizes (default 1,8,32,128)")
    g.add_argument(
        "--max-batch", action="store_true", help="search the largest batch that fits and meets the SLOs"
    )
    p.add_argument("--batch-limit", type=int, default=4096, help="upper end of the --max-batch search")
    p.add_argument("--context", type=_ints, default=[2048], help="decode context lengths (default 2048)")
    p.add_argument("--prompt", type=int, default=512, help="prompt tokens for TTFT (default 512)")
    add_precision_args(p)
    p.add_argument("--launch", choices=("eager", "graph"), default=None,
                   help="default eager (graph with --qps: serving engines replay CUDA graphs)")
    p.add_argument("--fusion", choices=fusion_policies(), default=None,
                   help="which kernels run: none (eager PyTorch), compile (torch.compile), serving (vLLM-style), "
                        "gpt-fast (gpt-fast/torchao's model); default none (serving with --qps)")
    p.add_argument(
        "--kv-tier", default=None, help="tier holding the KV cache (e.g. host, cxl); default device"
    )
    p.add_argument("--weights-tier", default=None, help="tier holding the weights; default device")
    p.add_argument("--slo-tpot-ms", type=float, default=None)
    p.add_argument("--slo-ttft-ms", type=float, default=None)
    p.add_argument("--price-per-hour", type=_prices, default=None, help="price per device-hour: A=2.5,B=1.1")
    p.add_argument("--set", action="append", default=[], dest="set_overrides", metavar="HW.PATH=VALUE")
    p.add_argument(
        "--scale",
        action="append",
        default=[],
        metavar="KEY=F[,KEY=F]",
        help="bandwidth, compute, dispatch, latency",
    )
    p.add_argument(
        "--sensitivity", action="store_true", help="tornado table of TPOT/TTFT under +/-20%% changes"
    )
    p.add_argument("--workers", type=int, default=1, help="local worker processes")
    p.add_argument("--dask", default=None, metavar="ADDRESS", help="run on a Dask scheduler")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--out", default=None, help="write to this file instead of stdout")
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group("planning at a request rate (request-level simulation, roofsim serve)")
    g.add_argument("--qps", type=float, default=None, help="requests/s to serve; switches to SLO planning")
    g.add_argument("--slo-p99-ttft-ms", type=float, default=None)
    g.add_argument("--slo-p99-tpot-ms", type=float, default=None)
    g.add_argument("--replicas", type=_ints, default=None, help="replica counts to simulate (default: search)")
    g.add_argument("--max-replicas", type=int, default=64)
    g.add_argument("--scheduler", type=_list, default=["continuous"], help="schedulers to try, comma-separated")
    g.add_argument("--arrival", choices=("poisson", "gamma", "constant"), default="poisson")
    g.add_argument("--cv", type=float, default=1.0)
    g.add_argument("--requests", type=int, default=None, help="requests per simulation (default 2000)")
    g.add_argument("--duration", type=float, default=None, help="seconds of traffic per simulation")
    g.add_argument("--prompt-len", default="512", metavar="DIST")
    g.add_argument("--output-len", default="128", metavar="DIST")
    g.add_argument("--seed", type=int, default=0)
    add_scheduler_args(g)
    p.set_defaults(func=run)


SERVING_COLUMNS = ["model", "hardware", "tp", "scheduler", "replicas", "devices", "p50_ttft_ms", "p99_ttft_ms",
                   "p50_tpot_ms", "p99_tpot_ms", "throughput_rps", "cost_per_hour", "meets_slo", "reason"]


def run_serving(args: argparse.Namespace) -> int:
    """``plan --qps R --slo-p99-*``: the cheapest hardware x tp x replicas x scheduler."""
    from roofsim.commands.serve import engine_config, step_overhead, traffic
    from roofsim.planner.serving import best_serving, plan_serving
    from simulator.serving import ServeConfig

    if len(args.models) != 1:
        raise UserError("--qps plans one model at a time; give one MODEL")
    if args.slo_p99_ttft_ms is None and args.slo_p99_tpot_ms is None:
        raise UserError("--qps needs --slo-p99-ttft-ms or --slo-p99-tpot-ms: the SLOs to plan against")
    if args.requests is None and args.duration is None:
        args.requests = 2000
    args.trace = None
    arrays = traffic(args)
    base = ServeConfig(model=args.models[0], hardware=args.hardware[0], sched=engine_config(args), dtype=args.dtype,
                       fusion=args.fusion or "serving", launch=args.launch or "graph",
                       gpu_memory_utilization=args.gpu_memory_utilization, swap_space_gib=args.swap_space_gib,
                       seed=args.seed, slo_ttft_ms=args.slo_p99_ttft_ms, slo_tpot_ms=args.slo_p99_tpot_ms,
                       num_gpu_blocks=args.num_gpu_blocks, step_overhead_s=step_overhead(args))
    df = plan_serving(args.models[0], args.hardware, qps=args.qps, traffic=arrays, tp=args.tp,
                      schedulers=args.scheduler, replicas=args.replicas, max_replicas=args.max_replicas,
                      slo_p99_ttft_ms=args.slo_p99_ttft_ms, slo_p99_tpot_ms=args.slo_p99_tpot_ms,
                      price_per_hour=args.price_per_hour, base=base, workers=args.workers, dask=args.dask,
                      progress=not args.no_progress)
    top = best_serving(df)
    if args.format == "csv":
        text = df.to_csv(index=False)
    elif args.format == "json":
        text = json.dumps({"configurations": _records(df), "best": _records(top)}, indent=2) + "\n"
    else:
        slo = ", ".join(f"P99 {k} <= {v:g} ms" for k, v in (("TTFT", args.slo_p99_ttft_ms), ("TPOT", args.slo_p99_tpot_ms))
                        if v is not None)
        out = [f"{args.models[0]} at {args.qps:g} req/s ({len(arrays[0])} requests per simulation), {slo}",
               f"configurations simulated ({len(df)}, {int(df['meets_slo'].sum())} meet the SLOs)",
               _table(df, SERVING_COLUMNS)]
        if top.empty:
            out.append("\nno configuration meets the SLOs")
        else:
            out.append("\ncheapest meeting the SLOs, per hardware (cost per hour, else devices)")
            out.append(_table(top, SERVING_COLUMNS))
        text = "\n".join(out) + "\n"
    return _write(args, text, len(df))


def _write(args: argparse.Namespace, text: str, rows: int) -> int:
    """``text`` to ``--out`` (saying so on stderr) or to stdout."""
    if args.out:
        from roofsim.outputs import write_text

        write_text(args.out, text, "--out")
        print(f"wrote {args.out} ({rows} configurations)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _placement(args: argparse.Namespace) -> dict[str, str] | None:
    p = {}
    if args.kv_tier:
        p["kv_cache"] = args.kv_tier
    if args.weights_tier:
        p["weights"] = args.weights_tier
    return p or None


def _settings_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """What ``api.plan`` and the sensitivity pass both take from the command line, so the
    tornado prices the same configurations the table does."""
    return {
        "prompt": args.prompt,
        "dtype": args.dtype,
        "launch": args.launch,
        "fusion": args.fusion,
        "placement": _placement(args),
        "slo_tpot_ms": args.slo_tpot_ms,
        "slo_ttft_ms": args.slo_ttft_ms,
        "set_overrides": args.set_overrides,
        "scale": args.scale,
    }


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _clean(v) for k, v in r.items()} for r in df.to_dict(orient="records")]


def _table(df: pd.DataFrame, columns: list[str]) -> str:
    cols = [c for c in columns if c in df.columns]
    extra = [c for c in df.columns if c.endswith("_needed_gib") and c not in cols]
    view = df[cols[:8] + extra + cols[8:]] if extra else df[cols]
    return tabulate(view, headers="keys", showindex=False, floatfmt=".4g", missingval="")


def run(args: argparse.Namespace) -> int:
    from roofsim.planner import api, sensitivity

    if args.out:
        from roofsim.outputs import check_file

        check_file(args.out, "--out")
    resolve_precision(args)
    if args.qps is not None:
        return run_serving(args)
    args.fusion = args.fusion or "none"
    args.launch = args.launch or "eager"

    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if args.batch_limit < 1:
        raise UserError(f"--batch-limit must be a whole number >= 1, got {args.batch_limit}")
    scaled = _scaled_rows(args)
    df = api.plan(
        args.models,
        args.hardware,
        tp=args.tp,
        batch=args.batch,
        max_batch=args.max_batch,
        batch_limit=args.batch_limit,
        context=args.context,
        price_per_hour=args.price_per_hour,
        workers=args.workers,
        dask=args.dask,
        progress=not args.no_progress,
        **_settings_kwargs(args),
    )
    if scaled is not None:
        df = pd.concat([df.assign(pp=1, ep=1, nodes=1), scaled], ignore_index=True)
    top = api.best(df)
    tornado = pd.DataFrame()
    if args.sensitivity:
        s = api.settings(args.hardware, **_settings_kwargs(args))
        parts = [
            sensitivity(
                s, r["model"], r["hardware"], int(r["tp"]), int(r["batch"]), int(r["context"])
            ).assign(model=r["model"])
            for r in top.to_dict(orient="records")
            if r.get("meets_slo")
        ]
        if parts:
            tornado = pd.concat(parts, ignore_index=True)
    text = _render(args.format, df, top, tornado)
    return _write(args, text, len(df))


def _scaled_rows(args: argparse.Namespace) -> pd.DataFrame | None:
    """Rows for the --pp/--ep layouts beyond TP alone (``roofsim.planner.scaled``), or None."""
    for flag in ("pp", "ep"):
        bad = [v for v in getattr(args, flag) if v < 1]
        if bad:
            raise UserError(f"--{flag} values must be positive integers, got {bad[0]}")
    if args.nodes is not None and args.nodes < 1:
        raise UserError(f"--nodes must be a positive integer, got {args.nodes}")
    if max(args.pp) == 1 and max(args.ep) == 1:
        if args.nodes is not None:
            raise UserError("--nodes needs --pp or --ep above 1 (layouts across nodes)")
        return None
    if args.max_batch:
        raise UserError("--max-batch does not search --pp/--ep layouts; give --batch sizes")
    if args.kv_tier or args.weights_tier or args.set_overrides or args.scale or args.sensitivity:
        raise UserError("--pp/--ep layouts take neither tiers, --set, --scale nor --sensitivity")
    from roofsim.planner.scaled import plan_scaled

    combos = [(p, e) for p in args.pp for e in args.ep if p > 1 or e > 1]
    parts = [plan_scaled(args.models, args.hardware, tp=args.tp, pp=[p], ep=[e], nodes=args.nodes,
                         batch=args.batch or [1, 8, 32, 128], context=args.context, prompt=args.prompt,
                         dtype=args.dtype, launch=args.launch, fusion=args.fusion, slo_tpot_ms=args.slo_tpot_ms,
                         slo_ttft_ms=args.slo_ttft_ms, price_per_hour=args.price_per_hour) for p, e in combos]
    return pd.concat(parts, ignore_index=True)


def _render(fmt: str, df: pd.DataFrame, top: pd.DataFrame, tornado: pd.DataFrame) -> str:
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        doc = {
            "configurations": _records(df),
            "best": _records(top),
            "sensitivity": _records(tornado),
            "whatif": df.attrs.get("sources", {}),
        }
        return json.dumps(doc, indent=2) + "\n"
    out = [
        f"configurations ({len(df)}, {int(df['fits'].sum())} fit, {int(df['meets_slo'].sum())} meet the SLOs)"
    ]
    out.append(_table(df, TABLE_COLUMNS))
    out.append("\nbest per hardware (most tokens/s per device meeting the SLOs)")
    out.append(_table(top, TABLE_COLUMNS))
    if not tornado.empty:
        out.append("\nsensitivity (+/-20% of each parameter; % change of TPOT and TTFT)")
        from roofsim.planner.sensitivity import TORNADO_COLUMNS

        cols = ["model", "hardware", *TORNADO_COLUMNS]
        out.append(tabulate(tornado[cols], headers="keys", showindex=False, floatfmt="+.2f"))
    sources = {hw: v for hw, v in df.attrs.get("sources", {}).items() if v}
    for hw, v in sources.items():
        out.append(f"\n{hw}: " + "; ".join(v))
    return "\n".join(out) + "\n"
