"""Fit a catalog system to a committed dataset and write the result into the catalog.

``python -m validation.catalog_fit --dataset validation/data/h200-20261129 --base h200
--id h200-cal`` fits ``--base`` on the dataset's training rows (``fit_dataset``: the
dataset's ``hardware.yaml``, ``fit.json``, ``predictions.csv`` and ``report.md``), then
writes ``<id>.yaml`` into the catalog as a what-if file over the base: only the fitted
numbers differ, each sourced to the dataset and the fit, so users pick it by id. The
public Vidur datasets take the same path (``validation.importers.vidur --fit``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hw_models.catalog import CATALOG, load
from hw_models.spec import SystemSpec

from .calibrate import fit_dataset
from .specio import write_derived_yaml


def fit_into_catalog(data: Path, base_id: str, cal_id: str, *, name: str, description: str, title: str,
                     header: str, transform: Callable[[SystemSpec], SystemSpec] | None = None,
                     catalog_dir: Path | None = None) -> dict[str, Any]:
    """Fit ``base_id`` to ``data`` and write ``<cal_id>.yaml`` into the catalog's systems."""
    base = load(base_id)
    out = fit_dataset(data, base, system_id=cal_id, name=name, description=description, title=title)
    spec = load(out["hardware"])
    if transform is not None:
        spec = transform(spec)
    write_derived_yaml(spec, base, base_id, (catalog_dir or CATALOG / "systems") / f"{cal_id}.yaml", header=header)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", type=Path, required=True, help="a dataset directory under validation/data")
    p.add_argument("--base", required=True, help="the catalog system the fit starts from")
    p.add_argument("--id", required=True, help="the calibrated system's catalog id")
    p.add_argument("--description", default="", help="what the calibrated system is and what was fitted")
    args = p.parse_args(argv)
    base = load(args.base)
    data = args.dataset.as_posix()
    out = fit_into_catalog(
        args.dataset, args.base, args.id, name=f"{base.name}, calibrated on {args.dataset.name}",
        description=f"{base.description} {args.description}".strip(),
        title=f"Calibration of {base.name} on {args.dataset.name}",
        header=f"{args.id}: {args.base} calibrated on {data}; written by python -m validation.catalog_fit "
               f"--dataset {data} --base {args.base} --id {args.id}")
    s = out["summary"]
    print(f"{args.id}: held-out median {100 * s['median_ape']:.1f}%, within 10% {100 * s['within_10pct']:.1f}% "
          f"({out['n_train']} training rows); wrote {out['hardware']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
