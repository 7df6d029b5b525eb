"""Held-out accuracy of the committed CPU calibration, re-predicted by the current cost model."""

from __future__ import annotations

from pathlib import Path

DATASET = Path(__file__).resolve().parents[2] / "validation" / "data" / "cpu-vm-20261129"


def run() -> list[dict]:
    from validation.calibrate import validate

    s = validate(DATASET)
    k = s["kernels"]
    out = [
        {"benchmark": "validation.cpu.kernels.median_ape", "value": 100 * k["median_ape"], "unit": "%",
         "note": f"{k['n']} held-out kernel rows of {DATASET.name}"},
        {"benchmark": "validation.cpu.kernels.within_10pct", "value": 100 * k["within_10pct"], "unit": "%",
         "note": "share of held-out kernels within ±10%"},
    ]
    for r in s["rows"]:
        if r["family"] == "model" and r["predicted_s"] is not None:
            out.append({"benchmark": f"validation.cpu.{r['case_id']}", "value": 100 * r["signed_err"], "unit": "%",
                        "note": f"measured {r['measured_s'] * 1e3:.1f} ms, predicted {r['predicted_s'] * 1e3:.1f} ms"})
    return out
