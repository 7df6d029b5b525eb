"""``roofsim report``: one self-contained HTML report (roofline, timeline, breakdown, top
ops, comparison, accuracy, throughput frontier) plus its figures and CSV tables."""

from __future__ import annotations

from roofsim.cliargs import add_precision_args
from roofsim.errors import UserError

PHASES = ("prefill", "decode", "both")
#: written into every report folder: a later run may replace a folder that holds it
MARKER = ".roofsim-report"


def _batches(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--frontier-batch: expected comma-separated integers, got {text!r}") from None
    if not out or min(out) < 1:
        raise UserError(f"--frontier-batch: batches must be >= 1, got {text!r}")
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="write a self-contained HTML report for a model on one or more machines",
                              description="Write DIR/report.html (one self-contained page: roofline, timeline, time "
                              "breakdown, top ops, comparison, predicted vs measured, throughput vs TPOT) plus the "
                              "PNG/SVG figures and CSV tables it shows.")
    p.add_argument("model", help="zoo id, path to a config.json, or pkg.mod:fn")
    p.add_argument("--hardware", required=True, help="catalog id or YAML path; several comma-separated")
    p.add_argument("--phase", choices=PHASES, default=None, help="default decode; both = one section per phase")
    p.add_argument("--batch", type=int, default=None, help="sequences per step (default 1)")
    p.add_argument("--context", type=int, default=None, help="KV-cache length for decode (default 2048)")
    p.add_argument("--prompt", type=int, default=None, help="prompt tokens for prefill (default 512)")
    add_precision_args(p)
    p.add_argument("--launch", choices=("eager", "graph"), default="eager",
                   help="eager: host dispatch per kernel; graph: one replayed graph (default eager)")
    p.add_argument("--fusion", default="none",
                   help="none, compile or serving, or several comma-separated (none,serving): each hardware "
                        "then runs under each, side by side (default none)")
    p.add_argument("--measurements", default=None, help="a measurement directory (measurements.csv + meta.json)")
    p.add_argument("--frontier-batch", default="1,4,16,64",
                   help="decode batch sweep for the throughput-vs-TPOT frontier (default 1,4,16,64); 'none' to skip")
    p.add_argument("--out", required=True,
                   help="output directory: created, or replaced whole if a previous report is there")
    p.set_defaults(func=run)


def _command(args) -> str:
    parts = ["roofsim report", args.model, f"--hardware {args.hardware}", f"--phase {args.phase}", f"--batch {args.batch}",
             f"--context {args.context}", f"--prompt {args.prompt}", f"--dtype {args.dtype}", f"--launch {args.launch}",
             f"--fusion {args.fusion}"]
    if args.measurements:
        parts.append(f"--measurements {args.measurements}")
    return " ".join(parts + [f"--out {args.out}"])


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")  # figures go to files; never open a window, even where a display exists
    from roofsim.cliargs import fill_step_args
    from roofsim.errors import Interrupted
    from roofsim.outputs import check_dir, staged_dir
    from roofsim.reporting import build_report

    given = fill_step_args(args)
    if args.batch < 1 or args.context < 1 or args.prompt < 1:
        raise UserError("--batch, --context and --prompt must be >= 1")
    hardware = [h.strip() for h in args.hardware.split(",") if h.strip()]
    if not hardware:
        raise UserError("--hardware: give at least one catalog id or YAML path")
    sweep = [] if args.frontier_batch.strip().lower() == "none" else _batches(args.frontier_batch)
    check_dir(args.out, "--out")
    try:
        # written into a temporary sibling folder and renamed into place when complete, under
        # a lock: a reader sees the previous report or the new one, never a mix of both
        with staged_dir(args.out, "--out", MARKER, also_ours=("report.html",)) as tmp:
            build_report(
                args.model, hardware, phase=args.phase, batch=args.batch, context=args.context,
                prompt=args.prompt, dtype=args.dtype, launch=args.launch, measurements=args.measurements,
                out=tmp, frontier_batches=sweep, command=_command(args), given=given,
                fusion=[f.strip() for f in args.fusion.split(",") if f.strip()] or ["none"],
            )
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; nothing written to {args.out} (a previous report there is kept)") from None
    from pathlib import Path

    print(Path(args.out) / "report.html")
    return 0
