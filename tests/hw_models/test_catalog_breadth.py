"""The hardware people rent (issue 15, hardware breadth): A10G, A40, L40, H100 PCIe, H100 NVL,
B200, MI300X, RTX 4090 and a desktop CPU load, carry their datasheet figures (dense, never
sparsity-doubled), say which figures are estimates, show up in ``roofsim hardware list``, and
simulate llama-3.1-8b decode."""

from __future__ import annotations

import json

import pytest

from hw_models import catalog
from roofsim.cli import main

BREADTH = ("a10g", "a40", "l40", "h100-pcie", "h100-nvl", "b200", "mi300x", "rtx-4090", "ryzen-7950x")
GPUS = tuple(s for s in BREADTH if s != "ryzen-7950x")


def test_the_breadth_systems_and_their_hosts_are_in_the_catalog():
    assert set(BREADTH) <= set(catalog.list_systems())
    assert {"aws-g5-host", "epyc-9374f-server", "ryzen-7950x-desktop", "ryzen-7950x"} <= set(catalog.list_hosts())


@pytest.mark.parametrize("sid", BREADTH)
def test_loads_with_its_own_id_and_a_device_of_the_right_kind(sid):
    s = catalog.load(sid)
    assert s.id == sid
    assert s.device.kind == ("cpu" if sid == "ryzen-7950x" else "gpu")
    assert s.device.operand_level in [lv.name for lv in s.device.memory]


def _figure(sid: str, attr: str) -> float:
    s = catalog.load(sid)
    d = s.device
    if attr.startswith("main."):
        return getattr(d.main_memory, attr.split(".")[1]).value
    if attr.startswith("matrix."):
        return d.matrix[attr.split(".")[1]].peak.value
    if attr.startswith("vector."):
        return d.vector[attr.split(".")[1]].peak.value
    if attr.startswith("level."):
        _, name, field = attr.split(".")
        return getattr(d.level(name), field).value
    if attr == "interconnect":
        return s.interconnect.bandwidth.value
    if attr == "host_link":
        return s.tier("host").link.bandwidth.value
    return getattr(d, attr).value


@pytest.mark.parametrize(
    "sid, attr, expected",
    [
        # A10G: AWS-only GA102; 24 GB GDDR6 at 600 GB/s
        ("a10g", "main.bandwidth", 600e9),
        ("a10g", "main.capacity", 24e9),
        ("a10g", "compute_units", 80),
        # A40 datasheet: 84 SMs, 48 GB GDDR6 at 696 GB/s, 149.7 TFLOP/s bf16 dense
        ("a40", "compute_units", 84),
        ("a40", "main.bandwidth", 696e9),
        ("a40", "main.capacity", 48e9),
        ("a40", "matrix.bf16", 149.7e12),
        ("a40", "matrix.tf32", 74.8e12),
        ("a40", "matrix.int8", 299.3e12),
        ("a40", "matrix.fp32", 37.4e12),
        # L40 datasheet: half the L40S tensor rate, same memory
        ("l40", "matrix.bf16", 181e12),
        ("l40", "matrix.fp8", 362e12),
        ("l40", "matrix.fp32", 90.5e12),
        ("l40", "main.bandwidth", 864e9),
        ("l40", "compute_units", 142),
        # H100 PCIe (datasheet PCIe column): 114 SMs, HBM2e 2 TB/s, PCIe Gen5 peers
        ("h100-pcie", "compute_units", 114),
        ("h100-pcie", "matrix.bf16", 756e12),
        ("h100-pcie", "matrix.fp8", 1513e12),
        ("h100-pcie", "matrix.fp32", 51e12),
        ("h100-pcie", "main.bandwidth", 2.0e12),
        ("h100-pcie", "main.capacity", 80e9),
        ("h100-pcie", "interconnect", 64e9),
        # H100 NVL: 94 GB HBM3 at 3.9 TB/s, NVLink bridge 600 GB/s bidirectional
        ("h100-nvl", "main.capacity", 94e9),
        ("h100-nvl", "main.bandwidth", 3.9e12),
        ("h100-nvl", "matrix.bf16", 835e12),
        ("h100-nvl", "interconnect", 300e9),
        # B200 (HGX B200 datasheet, per GPU): 180 GB HBM3e at 8 TB/s, 2.25 PFLOP/s bf16 dense
        ("b200", "main.capacity", 180e9),
        ("b200", "main.bandwidth", 8e12),
        ("b200", "matrix.bf16", 2.25e15),
        ("b200", "matrix.fp8", 4.5e15),
        ("b200", "interconnect", 900e9),
        ("b200", "host_link", 64e9),
        # MI300X (AMD ROCm docs peak table): 304 CUs, 192 GB HBM3 at 5.3 TB/s, 256 MB Infinity Cache
        ("mi300x", "compute_units", 304),
        ("mi300x", "main.bandwidth", 5.3e12),
        ("mi300x", "main.capacity", 192e9),
        ("mi300x", "matrix.bf16", 1307.4e12),
        ("mi300x", "matrix.fp8", 2614.9e12),
        ("mi300x", "matrix.tf32", 653.7e12),
        ("mi300x", "vector.fp32", 163.4e12),
        ("mi300x", "level.l2.capacity", 32 * 2**20),
        ("mi300x", "level.infinity-cache.capacity", 256 * 2**20),
        ("mi300x", "level.infinity-cache.bandwidth", 17.2e12),
        # RTX 4090 (Ada whitepaper): FP32-accumulate tensor rates, 72 MB L2, 1008 GB/s
        ("rtx-4090", "compute_units", 128),
        ("rtx-4090", "matrix.bf16", 165.2e12),
        ("rtx-4090", "matrix.fp8", 330.3e12),
        ("rtx-4090", "main.bandwidth", 1008e9),
        ("rtx-4090", "level.l2.capacity", 72e6),
        # Ryzen 9 7950X: 16 cores, dual-channel DDR5-5200
        ("ryzen-7950x", "compute_units", 16),
        ("ryzen-7950x", "main.bandwidth", 83.2e9),
        ("ryzen-7950x", "level.l3.capacity", 64e6),
    ],
)
def test_datasheet_figures(sid, attr, expected):
    assert _figure(sid, attr) == pytest.approx(expected, rel=0.005)


@pytest.mark.parametrize("sid", GPUS)
def test_dense_tensor_figures_never_sparsity_doubled(sid):
    m = catalog.load(sid).device.matrix
    for dtype, unit in m.items():
        assert "with sparsity" not in unit.peak.source or "dense" in unit.peak.source, (sid, dtype)
    # fp16 and bf16 tensor rates are equal on every one of these devices; fp8 (where present) is 2x
    assert m["fp16"].peak.value == pytest.approx(m["bf16"].peak.value)
    if "fp8" in m:
        assert m["fp8"].peak.value == pytest.approx(2 * m["bf16"].peak.value, rel=0.01)


def test_fp8_only_where_the_hardware_has_it():
    # Ampere (A10G, A40) has no fp8 tensor cores; Ada, Hopper, Blackwell and CDNA 3 do
    for sid in ("a10g", "a40"):
        assert "fp8" not in catalog.load(sid).device.matrix, sid
    for sid in ("l40", "h100-pcie", "h100-nvl", "b200", "mi300x", "rtx-4090"):
        assert "fp8" in catalog.load(sid).device.matrix, sid


def test_derived_systems_keep_their_base_and_change_what_differs():
    sxm, pcie, nvl = catalog.load("h100-sxm"), catalog.load("h100-pcie"), catalog.load("h100-nvl")
    assert pcie.device.tiles == sxm.device.tiles and pcie.host == sxm.host
    assert pcie.device.matrix["bf16"].peak.value < nvl.device.matrix["bf16"].peak.value < sxm.device.matrix["bf16"].peak.value
    assert pcie.interconnect.kind == "pcie" and pcie.num_devices == 8
    assert nvl.interconnect.kind == "nvlink" and nvl.num_devices == 2
    # a derived figure never keeps its base's source
    assert "PCIe" in pcie.device.main_memory.bandwidth.source
    assert "NVL" in nvl.device.main_memory.bandwidth.source
    l40s, l40 = catalog.load("l40s"), catalog.load("l40")
    assert l40.device.matrix["bf16"].peak.value == pytest.approx(l40s.device.matrix["bf16"].peak.value / 2, rel=0.01)
    assert l40.device.main_memory.bandwidth.value == l40s.device.main_memory.bandwidth.value
    for path, leaf in [("bf16", l40.device.matrix["bf16"].peak), ("mem", l40.device.main_memory.bandwidth),
                       ("link", l40.interconnect.bandwidth)]:
        assert "L40S" not in leaf.source, path


@pytest.mark.parametrize("sid, kind, devices", [
    ("a10g", "pcie", 8), ("a40", "pcie", 8), ("l40", "pcie", 8), ("h100-pcie", "pcie", 8),
    ("h100-nvl", "nvlink", 2), ("b200", "nvlink", 8), ("mi300x", "infinity-fabric", 8),
])
def test_interconnects(sid, kind, devices):
    s = catalog.load(sid)
    assert s.interconnect.kind == kind and s.num_devices == devices
    assert s.interconnect.bandwidth.value <= 1e12  # per direction, never a bidirectional sum


def test_single_card_and_cpu_systems():
    gpu = catalog.load("rtx-4090")
    assert gpu.num_devices == 1 and gpu.interconnect is None and gpu.tier_names == ["host"]
    cpu = catalog.load("ryzen-7950x")
    assert cpu.device.kind == "cpu" and cpu.num_devices == 1 and cpu.tier_names == []
    assert [lv.name for lv in cpu.device.memory] == ["l1", "l2", "l3", "dram"]
    assert cpu.device.compute_units.value == cpu.host.cores.value
    assert cpu.device.serial_dispatch.value is True


def test_mi300x_infinity_cache_sits_between_l2_and_hbm():
    names = [lv.name for lv in catalog.load("mi300x").device.memory]
    assert names == ["l1", "l2", "infinity-cache", "hbm"]


def test_mi300x_guesses_say_they_are_estimates():
    d = catalog.load("mi300x").device
    assert "estimate" in d.tiles.source
    assert "estimate" in d.kernel_latency.source
    curves = [u.efficiency for u in (*d.matrix.values(), *d.vector.values())] + [lv.efficiency for lv in d.memory]
    for c in curves:
        assert "estimate" in c.source or "assumed" in c.source, c.source


@pytest.mark.parametrize("sid, attr", [
    ("a10g", "compute_units"),  # no NVIDIA datasheet for the AWS-only A10G
    ("a10g", "matrix.bf16"),
    ("h100-nvl", "compute_units"),  # NVIDIA does not list SMs for the NVL
    ("h100-nvl", "matrix.fp8"),
    ("b200", "compute_units"),  # 148 SMs and 126 MB L2 come from microbenchmarks, not NVIDIA
    ("b200", "level.l2.capacity"),
    ("b200", "main.bandwidth"),  # 8 TB/s vs a later 7.7 TB/s table
    ("mi300x", "interconnect"),
    ("rtx-4090", "matrix.bf16"),  # whitepaper figures read in third-party copies
])
def test_unconfirmed_figures_say_check(sid, attr):
    s = catalog.load(sid)
    d = s.device
    if attr.startswith("matrix."):
        leaf = d.matrix[attr.split(".")[1]].peak
    elif attr.startswith("level."):
        _, name, field = attr.split(".")
        leaf = getattr(d.level(name), field)
    elif attr.startswith("main."):
        leaf = getattr(d.main_memory, attr.split(".")[1])
    elif attr == "interconnect":
        leaf = s.interconnect.bandwidth
    else:
        leaf = getattr(d, attr)
    assert "(check" in leaf.source, leaf.source


# --- the CLI -------------------------------------------------------------------------------


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_hardware_list_shows_them(capsys):
    rc, out, err = _run(capsys, "hardware", "list")
    assert rc == 0 and err == ""
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for sid in BREADTH:
        assert sid in rows, sid
    assert "1.31 PFLOP/s bf16" in rows["mi300x"] and "5.3 TB/s" in rows["mi300x"]
    assert "600 GB/s" in rows["a10g"]
    assert "8 TB/s" in rows["b200"]


@pytest.fixture(scope="module")
def decode_runs():
    """llama-3.1-8b decode (batch 1, context 2048, bf16) on every breadth system, once."""
    import contextlib
    import io

    out = {}
    for sid in BREADTH:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = main(["simulate", "llama-3.1-8b", "--hardware", sid, "--format", "json"])
        out[sid] = (rc, json.loads(buf.getvalue()) if rc == 0 else None)
    return out


@pytest.mark.parametrize("sid", BREADTH)
def test_simulate_llama_decode_runs(decode_runs, sid):
    rc, doc = decode_runs[sid]
    assert rc == 0
    assert doc["hardware"] == sid
    assert doc["step_time_s"] >= doc["memory_floor_s"] > 0


def test_memory_floor_follows_memory_bandwidth(decode_runs):
    # decode at batch 1 streams the weights once: the faster the memory, the lower the floor
    gpus = sorted(GPUS, key=lambda s: catalog.load(s).device.main_memory.bandwidth.value)
    floors = [decode_runs[s][1]["memory_floor_s"] for s in gpus]
    assert floors == sorted(floors, reverse=True), dict(zip(gpus, floors, strict=True))



@pytest.mark.parametrize("device_name, sid", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"),
    ("NVIDIA H100 PCIe", "h100-pcie"),
    ("NVIDIA H100 NVL", "h100-nvl"),
    ("NVIDIA B200", "b200"),
    ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
    ("NVIDIA A10G", "a10g"),
    ("NVIDIA A40", "a40"),
    ("NVIDIA L40S", "l40s"),
    ("NVIDIA L40", "l40"),
    ("NVIDIA L4", "l4"),
    ("NVIDIA GeForce RTX 4090", "rtx-4090"),
    ("AMD Instinct MI300X", "mi300x"),
    ("NVIDIA RTX A4000", None),
])
def test_calibration_picks_the_matching_catalog_base(device_name, sid):
    from validation.machine import GPU_BASES, gpu_base_id

    assert gpu_base_id(device_name) == sid
    assert set(GPU_BASES.values()) <= set(catalog.list_systems())
