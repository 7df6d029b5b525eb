"""``python -m validation.harness --device cpu|cuda [--quick|--tiny] --out DIR``."""

from __future__ import annotations

import argparse
import sys

from .run import run
from .store import StoreError, read_csv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m validation.harness", description="Measure kernels on this machine.")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", dest="mode", const="quick")
    g.add_argument("--tiny", action="store_const", dest="mode", const="tiny")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the run")
    p.add_argument("--out", required=True, help="directory for measurements.csv and meta.json")
    args = p.parse_args(argv)
    mode = args.mode or "full"

    def show(case, row):
        if row is None:
            print(f"skip (already measured) {case.id}", file=sys.stderr)
        elif row["status"] != "ok":
            print(f"{row['status']:>12}  {case.id}", file=sys.stderr)
        else:
            print(f"{row['median_s'] * 1e6:12.2f} us  {case.id}", file=sys.stderr)

    try:
        run(args.device, args.out, mode=mode, progress=show, threads=args.threads)
    except KeyboardInterrupt:
        try:
            kept = len(read_csv(args.out, warn=None))
        except StoreError:
            kept = 0
        print(f"harness: interrupted; {kept} rows kept in {args.out} (run again to resume)", file=sys.stderr)
        return 130
    except Exception as e:
        if not getattr(e, "user_facing", False):
            raise
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
