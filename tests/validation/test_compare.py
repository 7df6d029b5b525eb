"""Error statistics and the held-out split."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from validation.compare import error_summary, error_table
from validation.holdout import family_key, held_out

DATA = Path(__file__).resolve().parents[2] / "validation" / "data"


def _frame(meas, pred, kinds, fams=None):
    df = pd.DataFrame({"case_id": [f"c{i}" for i in range(len(meas))], "kind": kinds,
                       "family": fams or ["x"] * len(meas), "measured_s": meas, "predicted_s": pred,
                       "note": [""] * len(meas)})
    df["ape"] = (df["predicted_s"] / df["measured_s"] - 1).abs()
    return df


def test_error_summary_numbers():
    df = _frame([1.0, 1.0, 2.0, 2.0, 1.0], [1.05, 0.8, 2.0, 3.0, math.nan],
                ["matmul", "matmul", "copy", "copy", "copy"], ["matmul", "matmul", "bandwidth", "model", "x"])
    s = error_summary(df)
    assert s["n"] == 4
    assert s["median_ape"] == pytest.approx(0.125)
    assert s["p90_ape"] == pytest.approx(np.percentile([0.05, 0.2, 0.0, 0.5], 90))
    assert s["within_10pct"] == pytest.approx(0.5)
    assert s["by_kind"]["matmul"]["n"] == 2
    assert s["by_kind"]["matmul"]["median_ape"] == pytest.approx(0.125)
    assert s["by_kind"]["copy"]["within_10pct"] == pytest.approx(0.5)
    assert s["kernels"]["n"] == 3  # the model row is not a kernel
    assert s["unpredicted"] == [{"case_id": "c4", "reason": ""}]
    rows = error_table(s)
    assert rows[-1][0] == "overall" and rows[-1][1] == 4


def test_empty_summary():
    s = error_summary(pd.DataFrame())
    assert s["n"] == 0 and s["median_ape"] is None


def _row(family="matmul", op="mm", dtype="fp32", flops=1e6, nbytes=1e5, params=""):
    return {"family": family, "op": op, "dtype": dtype, "flops": flops, "bytes": nbytes, "params": params}


#: SHA-256 of "<family>/mm/fp32" read as an integer, mod 3: worked out once by hand, so a
#: changed hash (Python's salted ``hash``, another digest) that would reshuffle every
#: committed dataset's split fails here
OFFSET = {"matmul": 1, "elementwise": 2, "norm": 0, "attention": 0}


@given(st.sampled_from(sorted(OFFSET)), st.floats(1.0, 1e12))
def test_split_is_the_documented_band_rule_and_whole_model_steps_always_held_out(family, size):
    # a kernel row is held out when its half-decade band of work is the op's offset mod 3
    band = math.floor(2 * math.log10(size))
    assert held_out(_row(family, flops=size, nbytes=size)) == (band % 3 == OFFSET[family])
    assert held_out(_row("model", params='{"model": "gpt2"}'))
    assert not held_out(_row("framework", params='{"model": "gpt2"}'))
    assert not held_out(_row("dispatch"))


@pytest.mark.parametrize("name", ["cpu-vm-20261129", "vidur-a100", "vidur-a40", "vidur-h100"])
def test_split_matches_the_one_committed_with_each_dataset(name):
    # each dataset's predictions.csv was written on another machine, in another process, by
    # an earlier run: the split must come out the same here, row for row
    d = DATA / name
    rows = pd.read_csv(d / "measurements.csv").drop_duplicates("case_id")
    committed = pd.read_csv(d / "predictions.csv").set_index("case_id")["held_out"]
    sides = {r["case_id"]: held_out(r) for r in rows.to_dict("records")}
    assert len(committed) > 300 and 0 < committed.sum() < len(committed)
    assert {c: sides[c] for c in committed.index} == committed.to_dict()


def test_neighbours_share_a_family_so_they_share_a_side():
    # the same op within one half-decade of size is one family: all held out or all trained
    sides = {held_out(_row(flops=f)) for f in (1.1e6, 2e6, 3e6)}
    assert len(sides) == 1
    assert family_key(_row(flops=1.2e6)) == family_key(_row(flops=3e6)) != family_key(_row(flops=4e6))
    assert family_key(_row(flops=4e6)) == family_key(_row(flops=9e6)) != family_key(_row(flops=2e7))
    # memory-bound families are banded by bytes, matrix families by FLOPs
    assert family_key(_row("norm", "rms_norm", nbytes=3e5, flops=1e9)).endswith("1e5")
    assert family_key(_row("norm", "rms_norm", nbytes=4e5, flops=1e9)).endswith("1e5.5")


def test_public_rows_are_held_out_by_model():
    a = _row("linear", params='{"model": "meta-llama/Llama-2-7b-hf", "tp": 1}')
    b = _row("norm", "rms_norm", nbytes=1e9, params='{"model": "meta-llama/Llama-2-7b-hf", "tp": 8}')
    assert family_key(a) == family_key(b) == "model:meta-llama/Llama-2-7b-hf"
    assert held_out(a) == held_out(b)


def test_split_fraction_is_about_a_third():
    fams = [_row(op=f"op{i}") for i in range(600)]
    frac = np.mean([held_out(r) for r in fams])
    assert abs(frac - 1 / 3) < 0.06


def test_every_third_size_band_of_an_op_is_held_out():
    sizes = [10 ** (b / 2 + 0.1) for b in range(6, 20)]
    sides = [held_out(_row(flops=f)) for f in sizes]
    assert sum(sides) in (4, 5)  # 14 consecutive bands: a third of them
    # never two neighbouring bands held out, never three in a row trained
    assert not any(a and b for a, b in zip(sides, sides[1:], strict=False))
    assert not any(not (a or b or c) for a, b, c in zip(sides, sides[1:], sides[2:], strict=False))
