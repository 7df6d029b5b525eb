"""The harness: tiny run on the CPU, import hygiene, store, resumption."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from validation.harness import Case, Store, StoreError, cases, read_csv, run
from validation.harness.run import DeviceError, check_device
from validation.harness.store import COLUMNS
from workloads.tracer import trace

ROOT = Path(__file__).resolve().parents[2]


def test_harness_imports_only_torch_numpy_pandas():
    # (torch itself pulls in tqdm when it is installed, so tqdm is not on the list)
    code = (
        "import sys, validation.harness, validation.harness.__main__, validation.harness.models;"
        "bad = [m for m in ('simpy', 'pydantic', 'scipy', 'yaml', 'hw_models', 'workloads', 'simulator',"
        " 'roofsim', 'transformers', 'tabulate') if m in sys.modules];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _subset() -> list[Case]:
    tiny = cases("tiny", "cpu")
    fams = {}
    for c in tiny:
        fams.setdefault(c.family, c)
    return list(fams.values())


def test_tiny_run_writes_rows_and_meta(tmp_path):
    sub = _subset()
    run("cpu", tmp_path, mode="tiny", case_list=sub)
    df = read_csv(tmp_path)
    assert list(pd.read_csv(tmp_path / "measurements.csv", nrows=0).columns) == COLUMNS
    assert set(df["case_id"]) == {c.id for c in sub}
    ok = df[df["status"] == "ok"]
    assert len(ok) == len(sub)
    assert (ok["p10_s"] <= ok["median_s"]).all() and (ok["median_s"] <= ok["p90_s"]).all()
    assert (ok["median_s"] > 0).all() and (ok["threads"] >= 1).all()
    assert (ok["bytes"] > 0).all()
    meta = json.loads((tmp_path / "meta.json").read_text())
    for key in ("device", "device_name", "torch", "torch_threads", "date", "cpu_caches", "logical_cpus"):
        assert key in meta, key


def test_inputs_are_random_not_zero():
    for c in cases("tiny", "cpu"):
        _, args = c.make("cpu")
        for a in args:
            if hasattr(a, "is_floating_point") and a.is_floating_point():
                assert a.abs().sum() > 0, c.id


def test_case_ids_are_unique_per_plan():
    for mode in ("tiny", "quick", "full"):
        for device in ("cpu", "cuda"):
            ids = [c.id for c in cases(mode, device)]
            assert len(ids) == len(set(ids)), (mode, device)


def test_a_gpu_run_measures_tensor_core_kernels_roofsim_can_trace():
    # the bf16 GEMMs, decode GEMVs and flash attention a GPU fit needs for its tensor-core
    # rates: each traces here to the one kernel the harness will time
    from validation.harness.suites import _tensor_core_cases

    tc = _tensor_core_cases(quick=False)
    full = {c.id for c in cases("full", "cuda")}
    assert {c.id for c in tc} <= full and not {c.id for c in tc} & {c.id for c in cases("full", "cpu")}
    assert {c.family for c in tc} == {"matmul", "gemv", "attention"} and {c.dtype for c in tc} == {"bf16"}
    for c in tc:
        module, args, _ = c.module("meta")
        ops = [op for op in trace(module, args).ops if op.launches > 0]
        assert [op.kind for op in ops] == [c.family], c.id
        if c.family != "attention":
            assert ops[0].total_flops == pytest.approx(c.work()["flops"], rel=0.01), c.id


def test_resume_after_interruption_keeps_rows(tmp_path):
    sub = _subset()[:5]
    seen: list[str] = []

    class Boom(RuntimeError):
        pass

    def explode(case, row):
        seen.append(case.id)
        if len(seen) == 3:
            raise Boom("interrupted")

    with pytest.raises(Boom):
        run("cpu", tmp_path, mode="tiny", case_list=sub, progress=explode)
    kept = read_csv(tmp_path)
    assert list(kept["case_id"]) == [c.id for c in sub[:3]]

    measured, skipped = [], []
    run("cpu", tmp_path, mode="tiny", case_list=sub,
        progress=lambda c, r: (skipped if r is None else measured).append(c.id))
    assert skipped == [c.id for c in sub[:3]]
    assert measured == [c.id for c in sub[3:]]
    df = read_csv(tmp_path)
    assert list(df["case_id"]) == [c.id for c in sub]
    assert len(json.loads((tmp_path / "meta.json").read_text())["runs"]) == 2


def test_store_rejects_foreign_and_corrupt_files(tmp_path):
    (tmp_path / "measurements.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(StoreError, match="not a roofsim measurements file"):
        read_csv(tmp_path)
    with pytest.raises(StoreError, match="foreign"):
        Store(tmp_path).append({"case_id": "x"})
    (tmp_path / "measurements.csv").write_bytes(b"\xff\xfe\x00garbage\x00\n\x01")
    with pytest.raises(StoreError):
        read_csv(tmp_path)
    with pytest.raises(StoreError, match="no measurements"):
        read_csv(tmp_path / "missing")


def test_store_refuses_unknown_columns_and_other_device(tmp_path):
    s = Store(tmp_path)
    with pytest.raises(StoreError, match="columns"):
        s.append({"case_id": "a", "nonsense": 1})
    s.write_meta({"device": "cpu"})
    with pytest.raises(StoreError, match="device"):
        s.write_meta({"device": "cuda"})


def test_cuda_request_without_gpu_is_a_user_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(DeviceError, match="no CUDA GPU") as e:
        check_device("cuda")
    assert e.value.user_facing
    with pytest.raises(DeviceError):
        check_device("tpu")


def test_harness_cli_exit_2_for_missing_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = subprocess.run([sys.executable, "-m", "validation.harness", "--device", "cuda", "--tiny", "--out",
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_work_matches_tracer_for_single_op_cases():
    for c in cases("tiny", "cpu"):
        if c.family not in ("matmul", "gemv", "elementwise", "bandwidth"):
            continue
        module, args, _ = c.module("meta")
        g = trace(module, args)
        ops = [op for op in g.ops if op.launches > 0]
        assert len(ops) == 1, c.id
        assert ops[0].total_flops == pytest.approx(c.work()["flops"], rel=0.01), c.id
        assert ops[0].bytes == pytest.approx(c.work()["bytes"], rel=0.01), c.id


class _FakeClock:
    """perf_counter that advances only when the measured function says so."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _timed(monkeypatch, durations):
    from validation.harness import timing

    clock = _FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    seq = iter(durations)

    def fn():
        clock.t += next(seq)

    return timing, fn


def test_a_steady_case_is_measured_once_and_reports_its_spread(monkeypatch):
    timing, fn = _timed(monkeypatch, [1e-3] * 1000)
    t = timing.measure(fn, (), "cpu", repeats=9, warmup=1, min_repeat_s=0.0)
    assert t.rounds == 1 and not t.noisy
    assert t.median_s == pytest.approx(1e-3) and t.spread == pytest.approx(0.0)
    assert t.as_row()["spread"] == pytest.approx(0.0) and t.as_row()["noisy"] is False


def test_a_noisy_case_is_measured_again_then_flagged(monkeypatch):
    # every other call takes 3x longer: the spread stays far above the threshold
    timing, fn = _timed(monkeypatch, [1e-3, 3e-3] * 1000)
    t = timing.measure(fn, (), "cpu", repeats=9, warmup=1, min_repeat_s=0.0)
    assert t.rounds == timing.EXTRA_ROUNDS + 1
    assert t.repeats == 9 * (timing.EXTRA_ROUNDS + 1)
    assert t.noisy and t.spread > timing.NOISY_SPREAD


def test_a_case_that_settles_keeps_its_pooled_median(monkeypatch):
    # the first round is disturbed (two slow calls of nine), later rounds are clean: the
    # pooled p90 falls back to the steady time by the third round
    first = [1e-3] * 7 + [2e-3] * 2
    timing, fn = _timed(monkeypatch, [1e-3] + [1e-3] + first + [1e-3] * 1000)
    t = timing.measure(fn, (), "cpu", repeats=9, warmup=1, min_repeat_s=0.0)
    assert t.rounds == 3 and not t.noisy
    assert t.median_s == pytest.approx(1e-3)
