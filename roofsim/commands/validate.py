"""``roofsim validate``: how far predictions are from measurements.

``--measurements DIR [--hardware SPEC]`` predicts every held-out row of a dataset written
by ``roofsim calibrate``; ``--profile TRACE.json --model M --hardware H`` compares a
``torch.profiler`` Chrome trace with the simulated kernels of the same workload.
"""

from __future__ import annotations

import argparse
import json

from roofsim.cliargs import add_format_arg, add_step_args, fill_step_args
from roofsim.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("validate", help="error of predictions against measurements or a profiler trace")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--measurements", metavar="DIR", help="a dataset directory from roofsim calibrate")
    src.add_argument("--published", action="store_true",
                     help="predict the published end-to-end engine figures (validation/data/published)")
    p.add_argument("--catalog", choices=("calibrated", "datasheet"), default="calibrated",
                   help="with --published: predict on the calibrated systems (<id>-cal) where there are any "
                        "(default), or on the datasheet systems")
    p.add_argument("--all", action="store_true", help="with --published: list the training split too")
    src.add_argument("--profile", metavar="TRACE.json", help="a torch.profiler Chrome trace of a real run")
    p.add_argument("--hardware", default=None, help="catalog id or YAML (default: DIR/hardware.yaml)")
    p.add_argument("--model", default=None, help="with --profile: zoo id, config.json path or pkg.mod:fn")
    add_step_args(p)
    add_format_arg(p)
    p.set_defaults(func=run)


def _table(summary: dict) -> str:
    from tabulate import tabulate

    from validation import compare

    return tabulate(compare.error_table(summary), headers=compare.TABLE_HEADERS)


def run(args: argparse.Namespace) -> int:
    fill_step_args(args)
    if args.profile:
        return _run_profile(args)
    if args.published:
        return _run_published(args)
    from validation.calibrate import validate

    s = validate(args.measurements, args.hardware)
    if args.format == "json":
        print(json.dumps({k: v for k, v in s.items() if k != "rows"}, indent=2, default=str))
        return 0
    print(f"held-out rows of {s['measurements']} predicted with {s['hardware']}")
    print(_table(s))
    r = s.get("resolved")
    if r:
        from validation.compare import RESOLVED_TICKS

        print(f"\nrows at least {RESOLVED_TICKS} timer ticks long (the source rounds to {r['resolution_s'] * 1e6:g} us):")
        print(_table({**r, "kernels": r}).rsplit("\n", 1)[0])
    for u in s["unpredicted"]:
        print(f"not predicted: {u['case_id']}: {u['reason']}")
    return 0


def _run_profile(args: argparse.Namespace) -> int:
    if not args.model or not args.hardware:
        raise UserError("--profile needs --model and --hardware (the workload and machine the trace ran)")
    from validation.profile import compare_profile

    s = compare_profile(args.profile, args.model, args.hardware, phase=args.phase, batch=args.batch,
                        context=args.context, prompt=args.prompt, dtype=args.dtype)
    if args.format == "json":
        print(json.dumps({k: v for k, v in s.items() if k != "pairs"}, indent=2, default=str))
        return 0
    from tabulate import tabulate

    print(f"{s['matched']} of {s['simulated_ops']} simulated kernels matched to {s['profiled_ops']} profiled ops")
    rows = [[k, v["n"], f"{v['measured_s'] * 1e3:.3f} ms", f"{v['predicted_s'] * 1e3:.3f} ms",
             f"{100 * v['total_err']:+.1f}%", "n/a" if v["median_ape"] is None else f"{100 * v['median_ape']:.1f}%"]
            for k, v in s["by_kind"].items()]
    t = s["total"]
    rows.append(["total", t["n"], f"{t['measured_s'] * 1e3:.3f} ms", f"{t['predicted_s'] * 1e3:.3f} ms",
                 f"{100 * t['total_err']:+.1f}%", "n/a" if t["median_ape"] is None else f"{100 * t['median_ape']:.1f}%"])
    print(tabulate(rows, headers=["kind", "n", "measured", "predicted", "total error", "median |err| per op"]))
    return 0


def _run_published(args: argparse.Namespace) -> int:
    from validation.published import predict_all, summary

    pred = predict_all(calibrated=args.catalog == "calibrated")
    s = summary(pred)
    if args.format == "json":
        print(json.dumps({"summary": s, "cases": pred.replace({float("nan"): None}).to_dict("records")}, indent=2,
                         default=str))
        return 0
    from tabulate import tabulate

    show = pred if args.all else pred[pred["split"] == "heldout"]
    ok = show[show["error"].notna()]
    rows = [[r.case_id, r.mode, r.system, r.tp, r.dtype, r.metric, f"{r.measured:.4g}", f"{r.predicted:.4g}",
             f"{100 * r.error:+.1f}%"] for r in ok.itertuples()]
    print(tabulate(rows, headers=["case", "mode", "system", "tp", "precision", "metric", "published", "predicted",
                                  "error"]))

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    def line(name: str, st: dict) -> list:
        return [name, st["n"], pct(st["median_abs_error"]), pct(st["within_10pct"]), pct(st["within_15pct"])]

    table = [line("held-out", s["heldout"]), line("held-out, 16-bit", s["heldout_16bit"]),
             line("held-out, quantized", s["heldout_quantized"]), line("train", s["train"])]
    table += [line(f"held-out, {m}", st) for m, st in s["by_mode"].items()]
    print()
    print(tabulate(table, headers=["cases", "n", "median |error|", "within ±10%", "within ±15%"]))
    skipped = pred[pred["error"].isna()]
    if len(skipped):
        print(f"\nnot predicted: {len(skipped)} of {len(pred)} cases")
        for note, n in skipped["note"].value_counts().items():
            print(f"  {n:3d}  {note}")
    return 0
