"""Files a hostile user hands roofsim: made once per session under one folder ``{d}``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "validation" / "data" / "cpu-vm-20261129"

#: a small LLaMA config that traces in well under a second; variants break one key each
GOOD_CONFIG = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 1000,
               "max_position_embeddings": 4096}

_MEMORY = ("device: {memory: [{name: hbm, capacity: {value: %s, source: t}, bandwidth: {value: %s, source: t}, "
           "latency: {value: 500 ns, source: t}, efficiency: {value: 0.9, source: t}, "
           "persistent: {value: true, source: t}}], operand_level: null}\n")

SPECS = {
    "zero_bandwidth.yaml": "base: h100-sxm\n" + _MEMORY % ("80 GiB", "0 TB/s"),
    "absurd_bandwidth.yaml": "base: h100-sxm\n" + _MEMORY % ("80 GiB", "1e30 B/s"),
    "zero_capacity.yaml": "base: h100-sxm\n" + _MEMORY % ("0 GiB", "3 TB/s"),
    "zero_peak.yaml": "base: h100-sxm\ndevice: {matrix: {bf16: {peak: {value: 0 TFLOP/s, source: t}, "
                      "efficiency: {value: 0.8, source: t}}}}\n",
    "zero_compute_units.yaml": "base: h100-sxm\ndevice: {compute_units: {value: 0, source: t}}\n",
    "absurd_compute_units.yaml": "base: h100-sxm\ndevice: {compute_units: {value: 1.0e+12, source: t}}\n",
    "zero_devices.yaml": "base: h100-sxm\nnum_devices: 0\n",
    "absurd_devices.yaml": "base: h100-sxm\nnum_devices: 1.0e+26\n",
    "absurd_devices_text.yaml": "base: h100-sxm\nnum_devices: 1e26\n",
}

USER_MODULES = {
    "hostile_keyerror": "def fn():\n    return {}['missing']\n",
    "hostile_zerodiv": "def fn():\n    return 1 / 0\n",
    "hostile_syntax": "def fn(:\n    pass\n",
    "hostile_import": "raise RuntimeError('boom while importing')\n",
    "hostile_exit": "def fn():\n    raise SystemExit(0)\n",
    "hostile_notfn": "fn = 42\n",
}


def _config(**changes) -> dict:
    out = {**GOOD_CONFIG, **changes}
    return {k: v for k, v in out.items() if v is not None}


def copy_dataset(dst: Path, files=("measurements.csv", "meta.json", "hardware.yaml", "fit.json")) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copy(DATASET / name, dst / name)
    return dst


def _rewrite_meta(d: Path, **changes) -> None:
    meta = json.loads((d / "meta.json").read_text())
    meta.update(changes)
    (d / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


@pytest.fixture(scope="session")
def hostile_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    # bytes that are not UTF-8
    (d / "random.yaml").write_bytes(bytes(range(128, 256)) * 2)
    (d / "latin1.yaml").write_bytes("id: café\nname: x\n".encode("latin-1"))
    (d / "latin1.json").write_bytes('{"model_type": "llama", "name": "café"}'.encode("latin-1"))
    for name, text in SPECS.items():
        (d / name).write_text(text)
    # model configs
    configs = {
        "good.json": _config(),
        "hidden_negative.json": _config(hidden_size=-1),
        "hidden_not_divisible.json": _config(hidden_size=250),
        "hidden_string.json": _config(hidden_size="big"),
        "hidden_huge.json": _config(hidden_size=1e30),
        "hidden_huge_int.json": _config(hidden_size=10**30),
        "layers_zero.json": _config(num_hidden_layers=0),
        "vocab_zero.json": _config(vocab_size=0),
        "positions_zero.json": _config(max_position_embeddings=0),
        "only_model_type.json": {"model_type": "llama"},
        "no_model_type.json": {"hidden_size": 256},
        "unknown_model_type.json": {"model_type": "not-a-model"},
        "kv_not_dividing.json": _config(num_key_value_heads=3),
    }
    for name, cfg in configs.items():
        (d / name).write_text(json.dumps(cfg))
    # user modules (pkg.mod:fn)
    mods = d / "mods"
    mods.mkdir()
    for name, text in USER_MODULES.items():
        (mods / f"{name}.py").write_text(text)
    # measurement datasets
    lines = (DATASET / "measurements.csv").read_bytes().split(b"\n")
    bad = copy_dataset(d / "ds_bad_shape")
    broken = lines[5].replace(b'"{""n""', b'"{not json ""n""', 1)
    assert broken != lines[5]
    (bad / "measurements.csv").write_bytes(b"\n".join(lines[:5] + [broken] + lines[6:]))
    header = copy_dataset(d / "ds_header_only")
    (header / "measurements.csv").write_bytes(lines[0] + b"\n")
    torn = copy_dataset(d / "ds_torn_tail")
    body = (DATASET / "measurements.csv").read_bytes()
    (torn / "measurements.csv").write_bytes(body + lines[3][:50])
    glued = copy_dataset(d / "ds_glued_row")
    (glued / "measurements.csv").write_bytes(b"\n".join(lines[:100] + [lines[100][:60] + lines[101]] + lines[102:]))
    training = copy_dataset(d / "ds_training_only", ("measurements.csv", "meta.json", "hardware.yaml"))
    from validation.harness.store import read_csv
    from validation.holdout import held_out

    df = read_csv(training)
    df[[not held_out(r) for r in df.to_dict("records")]].to_csv(training / "measurements.csv", index=False)
    other_cpu = copy_dataset(d / "ds_other_cpu", ("measurements.csv", "meta.json"))
    _rewrite_meta(other_cpu, cpu_model="Intel(R) Xeon(R) Platinum 8480+", device_name="Intel(R) Xeon(R) Platinum 8480+")
    cuda = copy_dataset(d / "ds_cuda", ("measurements.csv", "meta.json"))
    _rewrite_meta(cuda, device="cuda:0", device_name="NVIDIA H100 80GB HBM3")
    (d / "one_op_trace.json").write_text(json.dumps(
        {"traceEvents": [{"ph": "X", "name": "aten::mm", "cat": "cpu_op", "ts": 1, "dur": 5}]}))
    (d / "a_file").write_text("not a folder\n")
    (d / "bad_trace.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0.5,10,5\nsoon,10,5\n")
    (d / "old_plan.txt").write_text("previous plan output\n")
    return d
