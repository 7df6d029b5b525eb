"""``roofsim simulate``: output contract, trace file, one-line errors with exit 2."""

from __future__ import annotations

import json

import pytest

from roofsim.cli import main

MODEL = "qwen2.5-0.5b"
KEYS = ("model", "hardware", "phase", "batch", "context", "dtype", "launch", "tp", "step_time_s", "flops", "bytes",
        "memory_floor_s", "compute_floor_s", "host_time_s", "device_busy_s", "kernels", "bottleneck",
        "time_by_bound")


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_has_the_contract_keys(capsys):
    rc, out, _ = _run(capsys, "simulate", MODEL, "--hardware", "h100-sxm", "--context", "256", "--format", "json")
    assert rc == 0
    doc = json.loads(out)
    for k in KEYS:
        assert k in doc, k
    assert doc["model"] == MODEL and doc["hardware"] == "h100-sxm" and doc["launch"] == "eager"
    assert doc["step_time_s"] >= doc["memory_floor_s"] > 0
    assert sum(doc["time_by_bound"].values()) == pytest.approx(doc["step_time_s"], rel=1e-6)


def test_json_is_byte_identical_across_runs(capsys):
    argv = ("simulate", MODEL, "--hardware", "a100-80gb", "--context", "256", "--format", "json", "--tp", "2")
    a = _run(capsys, *argv)[1]
    b = _run(capsys, *argv)[1]
    assert a == b


def test_table_and_trace(capsys, tmp_path):
    trace = tmp_path / "t.json"
    rc, out, err = _run(capsys, "simulate", MODEL, "--hardware", "h100-sxm", "--context", "256", "--launch", "graph",
                        "--trace-out", str(trace))
    assert rc == 0
    assert "step time" in out and "bottleneck" in out
    doc = json.loads(trace.read_text())
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    assert "host" in names and "device 0 stream 0" in names
    assert any(e["ph"] == "X" and e["tid"] == 0 for e in doc["traceEvents"])  # host dispatch slices


def test_prefetch_trace_has_a_link_track(capsys, tmp_path):
    trace = tmp_path / "t.json"
    rc, *_ = _run(capsys, "simulate", MODEL, "--hardware", "h100-sxm", "--context", "256", "--weights-tier", "host",
                  "--prefetch", "--trace-out", str(trace))
    assert rc == 0
    doc = json.loads(trace.read_text())
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    assert "host.link.h2d" in names
    assert any(e.get("cat") == "prefetch" for e in doc["traceEvents"])


@pytest.mark.parametrize(
    "argv, needle",
    [
        (("--kv-tier", "cxl"), "system 'h100-sxm' has no tier 'cxl'; it has: hbm, host"),
        (("--tp", "3"), "must divide both the 14 attention heads and the 2 KV heads"),
        (("--tp", "16"), "exceeds"),
        (("--batch", "0"), "--batch must be a positive integer"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, needle):
    rc, out, err = _run(capsys, "simulate", MODEL, "--hardware", "h100-sxm", "--context", "256", *argv)
    assert rc == 2
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_model_that_does_not_fit_is_reported(capsys):
    rc, _, err = _run(capsys, "simulate", "llama-3.1-70b", "--hardware", "l4", "--context", "256")
    assert rc == 2
    assert "does not fit" in err and "GiB" in err


@pytest.mark.parametrize("argv,needle", [
    (("--hardware", "a100-80gb", "--precision", "fp8"), "--activations fp8 needs fp8 matrix units, which a100-80gb"),
    (("--hardware", "a10g", "--weights", "fp8", "--activations", "fp8"), "activations allowed there: fp32, bf16"),
    (("--hardware", "l4", "--precision", "w4a16", "--quant-kernel", "nope"), "known: fused, marlin, exllama"),
    (("--hardware", "l4", "--precision", "w4a16", "--quant-kernel", "fp8-gemm"), "kernels for it: fused, marlin"),
    (("--hardware", "ryzen-7950x", "--precision", "w4a16", "--quant-kernel", "marlin"), "not on a cpu"),
    (("--hardware", "l4", "--precision", "w3a16"), "weights '3' not supported"),
    (("--hardware", "l4", "--dtype", "int4", "--precision", "int8"), "disagree"),
    (("--hardware", "l4", "--kv-cache", "fp4"), "--kv-cache 'fp4'"),
    (("--hardware", "l4", "--precision", "bf16", "--quant-kernel", "marlin"), "needs quantised weights"),
])
def test_precision_errors_are_one_line_exit_2(capsys, argv, needle):
    rc, out, err = _run(capsys, "simulate", MODEL, "--context", "64", *argv)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("roofsim: error:") and "Traceback" not in err
    assert needle in err, err


def test_precision_flags_and_kernel_table(capsys):
    rc, out, _ = _run(capsys, "simulate", MODEL, "--hardware", "l4", "--context", "64", "--weights", "int4",
                      "--kv-cache", "fp8", "--quant-kernel", "marlin")
    assert rc == 0
    assert "w4a16kv8+marlin on l4" in out
    assert "kernel marlin: dequantises in registers, multiplies on matrix units" in out
    assert "fused quantised GEMMs" in out and "memory:gddr6" in out
    rc, out, _ = _run(capsys, "simulate", MODEL, "--hardware", "l4", "--context", "64", "--dtype", "int4",
                      "--format", "json")
    doc = json.loads(out)
    assert doc["dtype"] == "w4a16" and doc["quantized"]["kernel"] == "fused"
