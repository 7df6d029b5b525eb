"""``roofsim calibrate --device cpu|cuda [--quick] --out DIR [--base SPEC]``: measure this
machine, fit its SystemSpec on a training split and report the held-out error."""

from __future__ import annotations

import argparse
import json
import sys

from roofsim.cliargs import add_format_arg
from roofsim.errors import Interrupted, UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("calibrate", help="measure kernels here, fit a hardware spec, report its error")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", dest="mode", const="quick", help="about a minute on a laptop")
    g.add_argument("--tiny", action="store_const", dest="mode", const="tiny", help="seconds; for tests")
    p.add_argument("--out", required=True, help="dataset directory (resumes if it holds measurements)")
    p.add_argument("--base", default=None, help="starting spec (catalog id or YAML); default: this machine")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads while measuring (default: torch's); 1 resists noise on a shared machine")
    p.add_argument("--no-measure", action="store_true", help="refit the rows already in --out without measuring")
    add_format_arg(p)
    p.set_defaults(func=run)


def _rows_kept(out: str) -> int:
    from validation.harness.store import StoreError, read_csv

    try:
        return len(read_csv(out, warn=None))
    except StoreError:
        return 0


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from roofsim.outputs import check_dir
    from validation import compare
    from validation.calibrate import calibrate
    from validation.harness.run import check_device
    from validation.harness.suites import cases

    mode = args.mode or "full"
    # refitting a GPU dataset needs no GPU here: only measuring does
    device = check_device(args.device, present=not args.no_measure)
    check_dir(args.out, "--out")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    bar = None
    progress = None
    if not args.no_measure:
        total = len(cases(mode, device))

        def progress(case, row):
            # the bar starts with the first case: a refused store prints its one error line only
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, desc="measuring", unit="case", file=sys.stderr,
                           disable=not sys.stderr.isatty() and args.format == "json")
            bar.set_postfix_str(case.id[:40], refresh=False)
            bar.update(1)

    try:
        out = calibrate(device, args.out, mode=mode, base=args.base, progress=progress,
                        measure=not args.no_measure, threads=args.threads)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {_rows_kept(args.out)} rows kept in {args.out} "
                          "(run the same command again to resume)") from None
    finally:
        if bar is not None:
            bar.close()
    s = out["summary"]
    if args.format == "json":
        print(json.dumps({k: v for k, v in {**s, "hardware": out["hardware"], "report": out["report"]}.items()},
                         indent=2, default=str))
        return 0
    from tabulate import tabulate

    print(tabulate(compare.error_table(s), headers=compare.TABLE_HEADERS))
    print(f"\nfitted on {out['n_train']} rows; wrote {out['hardware']} and {out['report']}")
    return 0
