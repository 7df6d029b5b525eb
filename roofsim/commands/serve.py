"""``roofsim serve MODEL --hardware ID``: request-level serving simulation.

Requests arrive (Poisson, gamma, constant or a trace file), a router sends them to
``--replicas`` engines of ``--tp`` devices each, each engine's scheduler batches them step
by step over a paged KV cache sized from the memory footprint, and every step's time comes
from roofsim's simulated step (``--fusion serving --launch graph`` by default: a vLLM-style
engine). Prints P50/P90/P99 TTFT, TPOT and E2E, throughput and goodput; ``--out DIR``
writes ``requests.csv``, ``steps.csv``, ``summary.json``, ``trace.json`` (Perfetto) and the
figures (latency CDFs, batch size and KV use over time).
"""

from __future__ import annotations

import argparse
import math
import sys

from tabulate import tabulate

from roofsim.cliargs import add_format_arg, add_precision_args, fusion_policies, resolve_precision
from roofsim.errors import UserError

SCHEDULER_HELP = "static (HF generate), continuous/vllm (vLLM), chunked/sarathi (Sarathi-Serve chunked prefill)"


def _pair(text: str) -> tuple[int, int]:
    p, sep, d = text.partition(":")
    try:
        out = (int(p), int(d))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected P:D (prefill:decode replicas), got {text!r}") from None
    if not sep or out[0] < 1 or out[1] < 1:
        raise argparse.ArgumentTypeError(f"expected P:D with both >= 1, got {text!r}")
    return out


def add_traffic_args(p: argparse.ArgumentParser, *, qps_required: bool = False) -> None:
    p.add_argument("--qps", type=float, default=None, required=qps_required, help="mean arrival rate, requests/s")
    p.add_argument("--arrival", choices=("poisson", "gamma", "constant"), default="poisson")
    p.add_argument("--cv", type=float, default=1.0, help="gamma arrivals: coefficient of variation of the gaps")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--requests", type=int, default=None, help="number of requests")
    g.add_argument("--duration", type=float, default=None, help="seconds of arrivals")
    p.add_argument("--prompt-len", default="512", metavar="DIST",
                   help="N, uniform:LO:HI, lognormal:MEDIAN:SIGMA or file:PATH[:COLUMN] (default 512)")
    p.add_argument("--output-len", default="128", metavar="DIST", help="as --prompt-len (default 128)")
    p.add_argument("--seed", type=int, default=0)


def add_engine_args(p: argparse.ArgumentParser) -> None:
    add_precision_args(p)
    p.add_argument("--fusion", choices=fusion_policies(), default="serving",
                   help="kernels each step runs (default serving: vLLM-style)")
    p.add_argument("--launch", choices=("eager", "graph"), default="graph", help="default graph (CUDA graphs)")
    add_scheduler_args(p)


def add_scheduler_args(p) -> None:
    """An engine's scheduler, KV-cache and per-step options (``serve``; ``plan --qps`` too)."""
    p.add_argument("--max-num-seqs", type=int, default=256)
    p.add_argument("--max-num-batched-tokens", type=int, default=8192)
    p.add_argument("--chunk-size", type=int, default=512, help="chunked: token budget per step")
    p.add_argument("--block-size", type=int, default=16, help="KV-cache block, tokens")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--preemption", choices=("recompute", "swap"), default="recompute")
    p.add_argument("--swap-space-gib", type=float, default=4.0, help="host memory for swapped KV, per device")
    p.add_argument("--num-gpu-blocks", type=int, default=None,
                   help="KV blocks per replica instead of what the memory footprint leaves (vLLM's override)")
    p.add_argument("--step-overhead", default="0s", metavar="TIME",
                   help="the engine's CPU time per step outside its kernels (scheduling, sampling), paid "
                        "before every step; default 0s; vLLM 0.6: 1.24ms, fitted on published runs "
                        "(validation/data/published/engines.yaml)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="request-level serving simulation (traffic, batching, KV cache, replicas)",
                              description=__doc__)
    p.add_argument("model", metavar="MODEL", help="zoo LLM id or config.json path")
    p.add_argument("--hardware", required=True, metavar="ID|PATH")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--pp", type=int, default=1,
                   help="pipeline stages per replica; each runs one engine per stage (simulator/serving/scaled.py)")
    p.add_argument("--ep", type=int, default=1, help="expert-parallel ranks per replica, attention data-parallel")
    p.add_argument("--nodes", type=int, default=1, help="nodes a replica's tp x pp x ep devices span (default 1)")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--scheduler", default="continuous", help=SCHEDULER_HELP)
    p.add_argument("--router", choices=("round_robin", "least_outstanding"), default="round_robin")
    add_traffic_args(p)
    p.add_argument("--trace", default=None, metavar="FILE",
                   help="CSV/JSONL of arrival_s, prompt_tokens, output_tokens (instead of --qps)")
    add_engine_args(p)
    p.add_argument("--disaggregate", type=_pair, default=None, metavar="P:D",
                   help="P prefill and D decode replicas (replaces --replicas)")
    p.add_argument("--kv-link", choices=("interconnect", "network"), default="interconnect",
                   help="disaggregation: KV copies over the system's interconnect or a 400 Gb/s network")
    p.add_argument("--spec-draft", default=None, metavar="MODEL", help="speculative decoding: draft model")
    p.add_argument("--spec-k", type=int, default=4, help="draft tokens per verify step")
    p.add_argument("--spec-alpha", type=float, default=0.7, help="acceptance rate of a draft token")
    p.add_argument("--slo-ttft-ms", type=float, default=None, help="per-request SLO for goodput")
    p.add_argument("--slo-tpot-ms", type=float, default=None, help="per-request SLO for goodput")
    add_format_arg(p)
    p.add_argument("--out", default=None, metavar="DIR", help="write requests.csv, steps.csv, summary.json, "
                   "trace.json and figures here")
    p.set_defaults(func=run)


def traffic(args: argparse.Namespace):
    """(arrival, prompt, output) arrays from the traffic options (bad input: UserError)."""
    from simulator.serving.traffic import Arrivals, generate, parse_lengths, read_trace

    if getattr(args, "trace", None):
        if args.qps is not None or args.requests is not None or args.duration is not None:
            raise UserError("--trace gives the arrivals; drop --qps, --requests and --duration")
        return read_trace(args.trace)
    if args.qps is None:
        raise UserError("give --qps R (with --requests N or --duration S), or --trace FILE")
    if args.requests is None and args.duration is None:
        raise UserError("give --requests N or --duration S")
    arr = Arrivals(args.arrival, args.qps, args.cv)
    return generate(arr, parse_lengths(args.prompt_len, "--prompt-len"), parse_lengths(args.output_len, "--output-len"),
                    n=args.requests, duration=args.duration, seed=args.seed)


def step_overhead(args: argparse.Namespace) -> float:
    """``--step-overhead`` in seconds (a bad one: a one-line UserError)."""
    from hw_models.units import UnitError, parse

    try:
        return parse(args.step_overhead, "time")
    except UnitError as e:
        raise UserError(f"--step-overhead: {e}") from None


def engine_config(args: argparse.Namespace):
    from simulator.serving import SchedulerConfig

    return SchedulerConfig(max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
                           chunk_size=args.chunk_size, preemption=args.preemption, block_size=args.block_size)


def run(args: argparse.Namespace) -> int:
    from simulator.serving import ServeConfig, SpecConfig, serve

    if args.out:
        from roofsim.outputs import check_dir

        check_dir(args.out, "--out")
    resolve_precision(args)
    for name in ("tp", "replicas", "pp", "ep", "nodes"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be a whole number >= 1, got {getattr(args, name)}")
    scaled = args.pp > 1 or args.ep > 1 or args.nodes > 1
    if scaled and (args.disaggregate or args.spec_draft):
        raise UserError("--pp/--ep/--nodes take neither --disaggregate nor --spec-draft")
    arrival, prompt, output = traffic(args)
    spec = SpecConfig(args.spec_draft, args.spec_k, args.spec_alpha) if args.spec_draft else None
    replicas = args.replicas
    step_model = None
    if scaled:
        from simulator.serving.scaled import ScaledStepModel, engines

        step_model = ScaledStepModel(args.model, args.hardware, tp=args.tp, pp=args.pp, ep=args.ep,
                                     nodes=args.nodes, dtype=args.dtype, fusion=args.fusion, launch=args.launch)
        replicas = engines(args.replicas, args.pp, args.ep)
    cfg = ServeConfig(model=args.model, hardware=args.hardware, tp=args.tp, replicas=replicas,
                      scheduler=args.scheduler, sched=engine_config(args), router=args.router, dtype=args.dtype,
                      fusion=args.fusion, launch=args.launch, gpu_memory_utilization=args.gpu_memory_utilization,
                      swap_space_gib=args.swap_space_gib, disaggregate=args.disaggregate, kv_link=args.kv_link,
                      spec=spec, seed=args.seed, slo_ttft_ms=args.slo_ttft_ms, slo_tpot_ms=args.slo_tpot_ms,
                      num_gpu_blocks=args.num_gpu_blocks, step_overhead_s=step_overhead(args))
    cfg.check()
    res = serve(cfg, arrival, prompt, output, step_model=step_model)
    if scaled:
        res.config.update(pp=args.pp, ep=args.ep, nodes=args.nodes, layout_replicas=args.replicas)
    if args.out:
        write_outputs(res, args.out)
    if args.format == "json":
        sys.stdout.write(res.summary_json() + "\n")
    else:
        sys.stdout.write(render(res) + "\n")
    if args.out:
        print(f"wrote {args.out}: requests.csv, steps.csv, summary.json, trace.json, latency_cdf.png, "
              "timeline.png (open trace.json at ui.perfetto.dev)", file=sys.stderr)
    return 0


def render(res) -> str:
    s = res.summary()
    c = res.config
    m = res.memory
    head = (f"{c['model']} on {c['num_replicas']} x {c['hardware']} tp {c['tp']} ({c['scheduler']}, "
            f"fusion {c['fusion']}, launch {c['launch']}): {s['requests']} requests over {s['duration_s']:.1f} s")
    if c.get("pp", 1) > 1 or c.get("ep", 1) > 1:
        head += (f"\nlayout: {c['layout_replicas']} replica(s) of tp {c['tp']} x ep {c['ep']} x pp {c['pp']} on "
                 f"{c['nodes']} node(s): {c['num_replicas']} engines (one per pipeline stage and EP rank)")
    mem = (f"KV cache per replica: {m['kv_blocks_per_replica']} blocks of {c['block_size']} tokens "
           f"({m['kv_capacity_gib']:.2f} GiB per device after {m['weights_gib']:.2f} GiB weights, "
           f"{m['activations_gib']:.2f} GiB activations)")
    rows = []
    for name in ("ttft", "tpot", "e2e"):
        rows.append([name.upper() + " ms", *(f"{s[f'p{q}_{name}_ms']:.4g}" for q in (50, 90, 99)),
                     f"{s[f'mean_{name}_ms']:.4g}"])
    table = tabulate(rows, headers=["", "P50", "P90", "P99", "mean"], tablefmt="simple")

    def f(x, fmt=".4g"):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)

    facts = [["throughput", f"{f(s['throughput_rps'])} req/s, {f(s['output_tokens_per_s'])} output tokens/s"],
             ["goodput", f"{f(s['goodput_rps'])} req/s ({f(100 * s['slo_attainment'], '.1f')}% within the SLOs)"],
             ["batch", f"{f(s.get('mean_batch_seqs'))} sequences per step (time-weighted)"],
             ["KV use", f"mean {f(100 * s.get('mean_kv_use', math.nan), '.1f')}%, peak "
                        f"{f(100 * s.get('peak_kv_use', math.nan), '.1f')}%"],
             ["preemptions", str(s["preemptions"])],
             ["replicas busy", f"{f(100 * s.get('busy_share', math.nan), '.1f')}%"],
             ["simulated in", f"{s['wall_s']:.2f} s ({s.get('steps', 0)} steps)"]]
    return "\n".join([head, mem, table, tabulate(facts, tablefmt="plain")])


def write_outputs(res, out: str) -> None:
    import json

    from roofsim.outputs import staged_dir

    with staged_dir(out, "--out", ".roofsim-serve", also_ours=("summary.json",)) as d:
        res.requests.to_csv(d / "requests.csv", index=False)
        res.steps.to_csv(d / "steps.csv", index=False)
        (d / "summary.json").write_text(res.summary_json() + "\n")
        (d / "trace.json").write_text(json.dumps(res.perfetto()))
        from reports.serving import latency_cdf, timeline_figure

        latency_cdf(res, d / "latency_cdf.png")
        timeline_figure(res, d / "timeline.png")
