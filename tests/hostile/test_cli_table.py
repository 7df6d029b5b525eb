"""Every bad or edge input of issue 12, as one table: command line -> exit code and a
fragment of the one line it must print. ``{d}`` is the session's folder of hostile files
(``conftest.hostile_dir``), ``{tmp}`` a fresh folder per case. Exit 2 cases must print
exactly one ``roofsim: error:`` line and no traceback; ``unchanged`` lists files the
command must leave byte for byte as they were (nothing already written is lost).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from roofsim.cli import main

#: (id, argv, exit code, fragment of stderr, files under {d} that must not change)
CASES = [
    # -- files that are not UTF-8: one line, not UnicodeDecodeError ------------------------------
    ("hardware-show-random-bytes", "hardware show {d}/random.yaml", 2, "not UTF-8", ()),
    ("hardware-show-latin1", "hardware show {d}/latin1.yaml", 2, "not UTF-8", ()),
    ("simulate-hardware-random-bytes", "simulate gpt2 --hardware {d}/random.yaml", 2, "not UTF-8", ()),
    ("trace-config-latin1", "trace {d}/latin1.json", 2, "not UTF-8", ()),
    ("hardware-empty-id", "simulate gpt2 --hardware= --context 64", 2, "hardware is empty", ()),
    ("hardware-directory", "hardware show {tmp}", 2, "Is a directory", ()),
    # -- spec ranges (hw_models.spec Quantity.minimum/maximum): named field, never ZeroDivisionError
    ("spec-zero-bandwidth", "hardware show {d}/zero_bandwidth.yaml", 2, "bandwidth.value: must be a finite number > 0", ()),
    ("spec-absurd-bandwidth", "hardware show {d}/absurd_bandwidth.yaml", 2, "bandwidth.value", ()),
    ("spec-zero-capacity", "hardware show {d}/zero_capacity.yaml", 2, "capacity.value: must be a finite number > 0", ()),
    ("spec-zero-peak", "hardware show {d}/zero_peak.yaml", 2, "peak.value: must be a finite number > 0", ()),
    ("spec-zero-compute-units", "hardware show {d}/zero_compute_units.yaml", 2, "compute_units.value: must be a finite number >= 1", ()),
    ("simulate-zero-compute-units", "simulate gpt2 --hardware {d}/zero_compute_units.yaml --context 64", 2, "compute_units", ()),
    ("spec-absurd-compute-units", "hardware show {d}/absurd_compute_units.yaml", 2, "compute_units.value", ()),
    ("spec-zero-devices", "hardware show {d}/zero_devices.yaml", 2, "num_devices", ()),
    ("spec-1e26-devices", "hardware show {d}/absurd_devices.yaml", 2, "num_devices", ()),
    ("spec-1e26-devices-text", "hardware show {d}/absurd_devices_text.yaml", 2, "num_devices", ()),
    ("plan-set-zero-bandwidth", "plan gpt2 --hardware h100-sxm --tp 1 --batch 1 --context 64 --no-progress "
     "--set h100-sxm.hbm.bandwidth=0TB/s", 2, "must be a finite number > 0", ()),
    ("plan-set-zero-compute-units", "plan gpt2 --hardware h100-sxm --tp 1 --batch 1 --context 64 --no-progress "
     "--set h100-sxm.device.compute_units=0", 2, "must be a finite number >= 1", ()),
    ("plan-set-1e26-devices", "plan gpt2 --hardware h100-sxm --tp 1 --batch 1 --context 64 --no-progress "
     "--set h100-sxm.num_devices=1e26", 2, "num_devices", ()),
    # -- unusable output paths: refused before any work ------------------------------------------
    ("simulate-trace-out-directory", "simulate gpt2 --hardware h100-sxm --context 64 --trace-out {tmp}", 2,
     "is a directory", ()),
    ("simulate-trace-out-missing-parent", "simulate gpt2 --hardware h100-sxm --context 64 --trace-out {tmp}/no/t.json",
     2, "does not exist", ()),
    ("trace-o-directory", "trace gpt2 --context 64 -o {tmp}", 2, "is a directory", ()),
    ("roofline-out-is-a-file", "roofline gpt2 --hardware h100-sxm --context 64 --out {d}/a_file", 2, "is a file, not a folder",
     ("a_file",)),
    ("roofline-out-proc", "roofline gpt2 --hardware h100-sxm --context 64 --out /proc/roofsim-out", 2, "under /proc", ()),
    ("roofline-out-sys", "roofline gpt2 --hardware h100-sxm --context 64 --out /sys/roofsim-out", 2, "under /sys", ()),
    ("report-out-is-a-file", "report gpt2 --hardware h100-sxm --context 64 --frontier-batch none --out {d}/a_file", 2,
     "is a file, not a folder", ("a_file",)),
    ("report-out-is-the-current-folder", "report gpt2 --hardware h100-sxm --context 64 --frontier-batch none --out .", 2,
     "is the current folder", ()),
    ("report-out-sys", "report gpt2 --hardware h100-sxm --context 64 --frontier-batch none --out /sys/roofsim-out", 2,
     "under /sys", ()),
    ("calibrate-out-is-a-file", "calibrate --device cpu --tiny --out {d}/a_file", 2, "is a file, not a folder", ("a_file",)),
    ("calibrate-threads-zero-creates-nothing", "calibrate --device cpu --tiny --threads 0 --out {tmp}/cal", 2,
     "--threads must be >= 1", ()),
    ("calibrate-out-proc", "calibrate --device cpu --tiny --out /proc/roofsim-cal", 2, "under /proc", ()),
    ("plan-out-directory", "plan gpt2 --hardware h100-sxm --tp 1 --batch 1 --context 64 --no-progress --out {tmp}", 2,
     "is a directory", ()),
    ("plan-out-proc", "plan gpt2 --hardware h100-sxm --tp 1 --batch 1 --context 64 --no-progress --out /proc/plan.csv", 2,
     "under /proc", ()),
    ("plan-out-missing-parent", "plan gpt2 --hardware h100-sxm --tp 1 --batch 1 --context 64 --no-progress "
     "--out {tmp}/no/plan.txt", 2, "does not exist", ()),
    ("plan-failing-keeps-old-out", "plan gpt2 --hardware h100-sxm --tp 1 --batch 1 --context 64 --no-progress "
     "--price-per-hour h100-sxm=inf --out {d}/old_plan.txt", 2, "finite", ("old_plan.txt",)),
    # -- measurements whose shape column is not JSON ----------------------------------------------
    ("validate-shape-not-json", "validate --measurements {d}/ds_bad_shape", 2, "is not valid JSON", ()),
    ("report-measurements-shape-not-json", "report gpt2 --hardware h100-sxm --context 64 --frontier-batch none "
     "--measurements {d}/ds_bad_shape --out {tmp}/r", 2, "is not valid JSON", ()),
    ("calibrate-no-measure-shape-not-json", "calibrate --device cpu --no-measure --out {d}/ds_bad_shape", 2,
     "is not valid JSON", ("ds_bad_shape/measurements.csv", "ds_bad_shape/hardware.yaml", "ds_bad_shape/fit.json")),
    # -- config.json out of range ---------------------------------------------------------------
    ("config-hidden-negative", "trace {d}/hidden_negative.json --context 64", 2, "hidden_size = -1 is out of range", ()),
    ("config-hidden-not-dividing-heads", "trace {d}/hidden_not_divisible.json --context 64", 2,
     "hidden_size 250 is not a multiple of num_attention_heads 4", ()),
    ("config-hidden-string", "trace {d}/hidden_string.json --context 64", 2, "hidden_size must be a whole number", ()),
    ("config-hidden-1e30", "trace {d}/hidden_huge.json --context 64", 2, "hidden_size must be a whole number", ()),
    ("config-hidden-10**30", "trace {d}/hidden_huge_int.json --context 64", 2, "is out of range", ()),
    ("config-kv-heads-not-dividing", "trace {d}/kv_not_dividing.json --context 64", 2, "num_key_value_heads 3", ()),
    ("config-only-model-type", "trace {d}/only_model_type.json --context 64", 2, "missing hidden_size", ()),
    ("config-layers-zero", "trace {d}/layers_zero.json --context 64", 2, "num_hidden_layers = 0 is out of range", ()),
    ("config-vocab-zero", "trace {d}/vocab_zero.json --context 64", 2, "vocab_size = 0 is out of range", ()),
    ("config-max-positions-zero", "trace {d}/positions_zero.json --context 2048", 2,
     "max_position_embeddings = 0 is out of range", ()),
    ("config-no-model-type", "trace {d}/no_model_type.json", 2, "has no model_type", ()),
    ("config-unknown-model-type", "trace {d}/unknown_model_type.json", 2, "not known to transformers", ()),
    ("config-good-traces", "trace {d}/good.json --context 64", 0, "", ()),
    # -- pkg.mod:fn: any exception from user code is one line naming the function ------------------
    ("callable-keyerror", "trace hostile_keyerror:fn", 2, "hostile_keyerror:fn(): KeyError: 'missing'", ()),
    ("callable-zerodivision", "trace hostile_zerodiv:fn", 2, "hostile_zerodiv:fn(): ZeroDivisionError", ()),
    ("callable-syntax-error", "trace hostile_syntax:fn", 2, "importing hostile_syntax raised SyntaxError", ()),
    ("callable-raises-at-import", "trace hostile_import:fn", 2, "importing hostile_import raised RuntimeError", ()),
    ("callable-system-exit-0", "trace hostile_exit:fn", 2, "hostile_exit:fn(): SystemExit: 0", ()),
    ("callable-not-a-function", "trace hostile_notfn:fn", 2, "fn is not a function", ()),
    ("callable-missing-module", "trace hostile_nosuchmodule:fn", 2, "cannot load", ()),
    ("callable-with-step-options", "trace hostile_keyerror:fn --context 99", 2, "--context do not apply", ()),
    ("validate-profile-not-utf8", "validate --profile {d}/latin1.json --model gpt2 --hardware h100-sxm", 2,
     "not a JSON Chrome trace", ()),
    # the step defaults (decode, context 2048) reach the model: gpt2 holds 1024 positions
    ("validate-profile-default-step", "validate --profile {d}/one_op_trace.json --model gpt2 --hardware h100-sxm", 2,
     "decode needs 2049 positions", ()),
    # -- wrong exit status before ------------------------------------------------------------------
    ("plan-negative-batch-limit", "plan gpt2 --hardware h100-sxm --tp 1 --max-batch --batch-limit -3 --context 64 "
     "--no-progress", 2, "--batch-limit must be a whole number >= 1", ()),
    ("roofline-does-not-fit", "roofline llama-3.1-70b --hardware l4 --out {tmp}/r", 2, "does not fit", ()),
    ("simulate-does-not-fit", "simulate llama-3.1-70b --hardware l4", 2, "does not fit", ()),
    ("roofline-top-0", "roofline gpt2 --hardware h100-sxm --context 64 --top 0 --out {tmp}/r", 2, "--top must be a positive", ()),
    ("roofline-top-negative", "roofline gpt2 --hardware h100-sxm --context 64 --top -5 --out {tmp}/r", 2, "--top must be", ()),
    ("validate-header-only", "validate --measurements {d}/ds_header_only", 2, "no measured rows", ()),
    ("validate-no-held-out-rows", "validate --measurements {d}/ds_training_only", 2, "no held-out rows", ()),
    # -- silent wrong answers before ---------------------------------------------------------------
    ("calibrate-into-other-cpu-dataset", "calibrate --device cpu --tiny --out {d}/ds_other_cpu", 2, "another machine",
     ("ds_other_cpu/meta.json", "ds_other_cpu/measurements.csv")),
    ("calibrate-into-cuda-dataset", "calibrate --device cpu --tiny --out {d}/ds_cuda", 2, "another machine",
     ("ds_cuda/meta.json", "ds_cuda/measurements.csv")),
    ("calibrate-gpu-base-on-cpu", "calibrate --device cpu --tiny --base h100-sxm --out {tmp}/cal", 2,
     "describes a gpu, but --device cpu measures a cpu", ()),
    ("calibrate-gpu-base-refit-cpu-rows", "calibrate --device cpu --no-measure --base h100-sxm --out {d}/ds_torn_tail", 2,
     "describes a gpu", ("ds_torn_tail/hardware.yaml", "ds_torn_tail/fit.json", "ds_torn_tail/meta.json")),
    ("validate-torn-last-row-warns", "validate --measurements {d}/ds_torn_tail --format json", 0,
     "warning: {d}/ds_torn_tail/measurements.csv: the last row is cut off", ("ds_torn_tail/measurements.csv",)),
    ("validate-glued-row", "validate --measurements {d}/ds_glued_row", 2, "line 101", ()),
    ("plan-price-inf", "plan gpt2 --hardware h100-sxm --tp 1 --batch 1 --context 64 --no-progress "
     "--price-per-hour h100-sxm=inf", 2, "must be a finite number >= 0", ()),
    ("plan-price-nan", "plan gpt2 --hardware h100-sxm --tp 1 --batch 1 --context 64 --no-progress "
     "--price-per-hour h100-sxm=nan", 2, "must be a finite number >= 0", ()),
    ("simulate-vision-decode-context", "simulate vit-b-16 --hardware h100-sxm --phase decode --context 999", 2,
     "--context, --phase do not apply", ()),
    ("roofline-vision-prompt", "roofline vit-b-16 --hardware h100-sxm --prompt 7 --out {tmp}/r", 2, "--prompt do not apply", ()),
    ("report-vision-phase", "report vit-b-16 --hardware h100-sxm --phase prefill --frontier-batch none --out {tmp}/r", 2,
     "--phase do not apply", ()),
    ("sketch-context", "trace countsketch --context 5", 2, "--context do not apply", ()),
    ("simulate-vision-defaults-run", "simulate vit-b-16 --hardware h100-sxm --batch 2", 0, "", ()),
    # -- scale-out (issue 16): --nodes, --pp, --ep -------------------------------------------------
    ("simulate-pp-more-than-layers", "simulate gpt2 --hardware h100-sxm --context 64 --pp 13", 2,
     "--pp 13 exceeds the 12 layers of the model", ()),
    ("simulate-ep-dense-model", "simulate gpt2 --hardware h100-sxm --context 64 --ep 2 --batch 2", 2,
     "--ep 2: gpt2 has no mixture-of-experts layers", ()),
    ("simulate-ep-more-than-experts", "simulate mixtral-8x7b --hardware h100-sxm --context 64 --nodes 2 --ep 16 "
     "--batch 16", 2, "--ep 16 exceeds the 8 experts of mixtral-8x7b; allowed: 1..8", ()),
    ("simulate-layout-exceeds-devices", "simulate llama-3.1-8b --hardware h100-sxm --context 64 --nodes 2 --tp 8 --pp 4 "
     "--batch 4", 2, "--tp 8 x --ep 1 x --pp 4 = 32 devices exceeds the 16", ()),
    ("simulate-nodes-zero", "simulate gpt2 --hardware h100-sxm --context 64 --nodes 0", 2, "--nodes must be a positive", ()),
    ("simulate-pp-zero", "simulate gpt2 --hardware h100-sxm --context 64 --pp 0", 2, "--pp must be a positive", ()),
    ("simulate-nodes-without-network", "simulate gpt2 --hardware l4 --context 64 --nodes 2", 2,
     "has no inter-node 'network'", ()),
    ("simulate-batch-not-split", "simulate gpt2 --hardware h100-sxm --context 64 --pp 2 --microbatches 2 --batch 3", 2,
     "--batch 3 must be a multiple of the 2 micro-batch(es)", ()),
    ("simulate-ep-imbalance-below-one", "simulate mixtral-8x7b --hardware h100-sxm --context 64 --ep 2 --batch 2 "
     "--ep-imbalance 0.5", 2, "--ep-imbalance must be a number in [1, 1000)", ()),
    ("simulate-microbatches-without-pp", "simulate gpt2 --hardware h100-sxm --context 64 --microbatches 2", 2,
     "--microbatches needs --pp > 1", ()),
    ("simulate-pp-does-not-fit", "simulate llama-3.1-405b --hardware h100-sxm --nodes 2 --tp 8 --pp 2 --batch 512 "
     "--context 8192", 2, "does not fit: stage 0", ()),
    # -- roofsim serve (issue 14): traffic, engine and output options --------------------------------
    ("serve-negative-qps", "serve gpt2 --hardware h100-sxm --qps -1 --requests 3", 2, "--qps must be a number > 0", ()),
    ("serve-no-traffic", "serve gpt2 --hardware h100-sxm", 2, "give --qps", ()),
    ("serve-no-count", "serve gpt2 --hardware h100-sxm --qps 1", 2, "--requests N or --duration S", ()),
    ("serve-unknown-scheduler", "serve gpt2 --hardware h100-sxm --qps 1 --requests 3 --scheduler fifo", 2,
     "--scheduler 'fifo' unknown", ()),
    ("serve-bad-length", "serve gpt2 --hardware h100-sxm --qps 1 --requests 3 --prompt-len normal:5", 2,
     "unknown length distribution", ()),
    ("serve-zero-length", "serve gpt2 --hardware h100-sxm --qps 1 --requests 3 --output-len 0", 2,
     "--output-len: '0' must be a whole number >= 1", ()),
    ("serve-trace-missing", "serve gpt2 --hardware h100-sxm --trace {d}/no_such.csv", 2, "not found", ()),
    ("serve-trace-bad-row", "serve gpt2 --hardware h100-sxm --trace {d}/bad_trace.csv", 2, "arrival_s", ()),
    ("serve-vision-model", "serve vit-b-16 --hardware h100-sxm --qps 1 --requests 3", 2, "not a decoder LLM", ()),
    ("serve-tp-too-big", "serve gpt2 --hardware l4 --tp 16 --qps 1 --requests 3", 2, "exceeds the 8 device", ()),
    ("serve-prompt-too-long", "serve gpt2 --hardware h100-sxm --qps 1 --requests 3 --prompt-len 2000", 2,
     "positions but the model allows 1024", ()),
    ("serve-does-not-fit", "serve llama-3.1-70b --hardware l4 --qps 1 --requests 3", 2, "leave no room for the KV cache", ()),
    ("serve-disaggregate-bad", "serve gpt2 --hardware h100-sxm --qps 1 --requests 3 --disaggregate 0:1", 2,
     "expected P:D with both >= 1", ()),
    ("serve-spec-alpha", "serve gpt2 --hardware h100-sxm --qps 1 --requests 3 --spec-draft gpt2 --spec-alpha 2", 2,
     "--spec-alpha must be in 0..1", ()),
    ("serve-out-is-a-file", "serve gpt2 --hardware h100-sxm --qps 1 --requests 3 --out {d}/a_file", 2,
     "is a file, not a folder", ("a_file",)),
    ("serve-fp8-on-a100", "serve gpt2 --hardware a100-80gb --qps 1 --requests 3 --precision fp8", 2,
     "needs fp8 matrix units, which a100-80gb does not have", ()),
    ("plan-qps-without-slo", "plan gpt2 --hardware h100-sxm --tp 1 --qps 2 --requests 50 --no-progress", 2,
     "--qps needs --slo-p99-ttft-ms or --slo-p99-tpot-ms", ()),
    # -- precision and quantized kernels (issue 15): named value, what is allowed, before any work -----
    ("roofline-fp8-on-a100", "roofline gpt2 --hardware a100-80gb --context 64 --precision fp8 --out {tmp}/r", 2,
     "needs fp8 matrix units, which a100-80gb does not have", ()),
    ("report-unknown-quant-kernel", "report gpt2 --hardware l4 --context 64 --precision w4a16 --quant-kernel x "
     "--frontier-batch none --out {tmp}/r", 2, "--quant-kernel 'x' unknown; known: fused", ()),
    ("trace-negative-group-size", "trace gpt2 --context 64 --precision w4a16 --group-size -1", 2,
     "--group-size must be a whole number >= 0", ()),
    ("trace-vision-w4a16", "trace resnet-50 --precision w4a16", 2, "not allowed here; choose one of: fp32", ()),
    ("simulate-kernel-on-cpu", "simulate gpt2 --hardware ryzen-7950x --context 64 --precision w4a16 --quant-kernel exllama",
     2, "runs on gpu devices, not on a cpu", ()),
    ("plan-weights-garbage", "plan gpt2 --hardware l4 --tp 1 --batch 1 --context 64 --no-progress --weights int3", 2,
     "--weights 'int3' not supported", ()),
]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("argv", "code", "fragment", "unchanged"),
                         [pytest.param(a, c, f, u, id=i) for i, a, c, f, u in CASES])
def test_hostile_input(argv, code, fragment, unchanged, hostile_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(hostile_dir / "mods"))
    monkeypatch.chdir(tmp_path)
    args = [a.replace("{d}", str(hostile_dir)).replace("{tmp}", str(tmp_path)) for a in argv.split()]
    before = {name: _digest(hostile_dir / name) for name in unchanged}
    capsys.readouterr()
    try:
        rc = main(args)
    except SystemExit as e:  # argparse refusals exit 2 with one line too
        rc = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert rc == code, err
    assert fragment.replace("{d}", str(hostile_dir)) in err, err
    if code == 2:
        lines = [x for x in err.strip().splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("roofsim: error:"), lines
    for name in unchanged:
        assert _digest(hostile_dir / name) == before[name], f"{name} was changed"
    # a refused command leaves nothing behind (a released lock file at most)
    if code == 2:
        assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_unwritable_out_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc = main(["plan", "gpt2", "--hardware", "h100-sxm", "--tp", "1", "--batch", "1", "--context", "64",
                   "--no-progress", "--out", str(ro / "plan.txt")])
        assert rc == 2 and "is not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)

