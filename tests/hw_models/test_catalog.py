"""The built-in catalog: every machine loads, every number has a source, the key figures
match docs/sources.md, and bad specs fail with one line naming the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from hw_models import catalog
from hw_models.catalog import SpecError
from hw_models.quantity import EfficiencyCurve, Quantity
from hw_models.spec import HostSpec, SystemSpec, TierSpec

REQUIRED_SYSTEMS = {
    "h100-sxm", "h200", "a100-80gb", "l40s", "l4", "gh200", "xeon-8480", "epyc-9654",
    "hbm3-pim", "lpddr5x-pim", "h100-sxm-cxl",
}


def walk(obj, path="") -> list[tuple[str, Quantity | EfficiencyCurve]]:
    """Every Quantity and EfficiencyCurve in a spec, with its field path."""
    if isinstance(obj, (Quantity, EfficiencyCurve)):
        return [(path, obj)]
    if isinstance(obj, BaseModel):
        return [r for name in type(obj).model_fields for r in walk(getattr(obj, name), f"{path}.{name}")]
    if isinstance(obj, dict):
        return [r for k, v in obj.items() for r in walk(v, f"{path}.{k}")]
    if isinstance(obj, (list, tuple)):
        return [r for i, v in enumerate(obj) for r in walk(v, f"{path}[{i}]")]
    return []


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def one_line_error(hardware) -> str:
    with pytest.raises(SpecError) as e:
        catalog.load(hardware)
    msg = str(e.value)
    assert "\n" not in msg and msg
    assert e.value.user_facing is True
    return msg


# --- the catalog as shipped ----------------------------------------------------------


def test_catalog_has_the_systems_the_project_promises():
    assert REQUIRED_SYSTEMS <= set(catalog.list_systems())
    assert {"x86-server", "grace", "xeon-8480", "epyc-9654"} <= set(catalog.list_hosts())
    assert {"cxl-expander-x8", "cxl-expander-x16"} <= set(catalog.list_tiers())


@pytest.mark.parametrize("sid", catalog.list_systems())
def test_every_system_loads_and_every_number_has_a_source(sid):
    s = catalog.load(sid)
    assert s.id == sid
    leaves = walk(s)
    # a device alone has dozens of numbers: an empty walk would make this test vacuous
    assert len(leaves) > 30
    for path, leaf in leaves:
        assert leaf.source.strip(), f"{sid}{path} has no source"


@pytest.mark.parametrize("sid", catalog.list_systems())
def test_memory_hierarchy_gets_slower_and_farther(sid):
    mem = catalog.load(sid).device.memory
    bws = [lv.bandwidth.value for lv in mem]
    lats = [lv.latency.value for lv in mem]
    assert bws == sorted(bws, reverse=True), f"{sid}: bandwidth should fall level by level"
    assert lats == sorted(lats), f"{sid}: latency should rise level by level"
    assert all(lv.capacity.value > 0 and lv.bandwidth.value > 0 for lv in mem)


@pytest.mark.parametrize("sid", catalog.list_systems())
def test_efficiency_curves_roll_off_at_small_sizes(sid):
    d = catalog.load(sid).device
    curves = [d.main_memory.efficiency] + [u.efficiency for u in d.matrix.values()]
    for c in curves:
        es = [e for _, e in c.points]
        # a datasheet guess rises with size; a fitted curve follows its data, dips included
        if not c.source.startswith("measured:"):
            assert es == sorted(es), f"{sid}: efficiency should not fall as work grows ({c.source})"
        assert c(1e3) < c(1e13), f"{sid}: tiny work should not reach the plateau ({c.source})"


@pytest.mark.parametrize("kind, ids", [("hosts", catalog.list_hosts()), ("tiers", catalog.list_tiers())])
def test_components_validate_on_their_own_and_cite_sources(kind, ids):
    for cid in ids:
        spec = catalog.load_host(cid) if kind == "hosts" else catalog.load_tier(cid)
        assert isinstance(spec, HostSpec if kind == "hosts" else TierSpec)
        leaves = walk(spec)
        assert len(leaves) >= 6
        assert all(leaf.source.strip() for _, leaf in leaves), cid


def _raw_numbers(doc, path=""):
    if isinstance(doc, dict):
        if "value" in doc or "points" in doc:
            yield path, doc
            return
        for k, v in doc.items():
            yield from _raw_numbers(v, f"{path}.{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _raw_numbers(v, f"{path}[{i}]")


def test_every_number_in_every_yaml_file_cites_a_source():
    files = sorted(catalog.CATALOG.glob("*/*.yaml"))
    assert len(files) >= 15
    for f in files:
        numbers = list(_raw_numbers(yaml.safe_load(f.read_text())))
        for path, num in numbers:
            assert str(num.get("source", "")).strip(), f"{f.name}{path}"
            assert "sparsity" not in str(num.get("value", "")), f"{f.name}{path}"


def test_dense_figures_only():
    # sparse datasheet numbers are 2x the dense ones; the catalog must hold the dense ones
    assert catalog.load("h100-sxm").device.matrix["bf16"].peak.value == pytest.approx(989e12)
    assert catalog.load("a100-80gb").device.matrix["bf16"].peak.value == pytest.approx(312e12)
    assert catalog.load("l40s").device.matrix["fp8"].peak.value == pytest.approx(733e12)
    assert catalog.load("l4").device.matrix["bf16"].peak.value == pytest.approx(121e12)


@pytest.mark.parametrize(
    "sid, attr, expected",
    [
        ("h100-sxm", "main.bandwidth", 3.35e12),
        ("h100-sxm", "main.capacity", 80e9),
        ("h200", "main.bandwidth", 4.8e12),
        ("h200", "main.capacity", 141e9),
        ("a100-80gb", "main.bandwidth", 2.04e12),
        ("a100-80gb", "compute_units", 108),
        ("a100-80gb", "matrix.tf32", 156e12),
        ("a100-80gb", "matrix.fp32", 19.5e12),
        ("l40s", "main.bandwidth", 864e9),
        ("l40s", "main.capacity", 48e9),
        ("l40s", "compute_units", 142),
        ("l40s", "matrix.fp32", 91.6e12),
        ("l4", "main.bandwidth", 300e9),
        ("l4", "main.capacity", 24e9),
        ("l4", "matrix.fp8", 242e12),
        ("l4", "matrix.fp32", 30.3e12),
        ("gh200", "main.bandwidth", 4.0e12),
        ("gh200", "main.capacity", 96e9),
        ("xeon-8480", "main.bandwidth", 307e9),
        ("xeon-8480", "compute_units", 56),
        ("epyc-9654", "main.bandwidth", 461e9),
        ("epyc-9654", "compute_units", 96),
        ("lpddr5x-pim", "main.bandwidth", 120e9),
    ],
)
def test_key_figures_match_sources(sid, attr, expected):
    d = catalog.load(sid).device
    if attr.startswith("main."):
        got = getattr(d.main_memory, attr.split(".")[1]).value
    elif attr.startswith("matrix."):
        got = d.matrix[attr.split(".")[1]].peak.value
    else:
        got = getattr(d, attr).value
    assert got == pytest.approx(expected, rel=0.005)


def test_links_and_interconnects():
    assert catalog.load("h100-sxm").interconnect.bandwidth.value == pytest.approx(450e9)
    assert catalog.load("a100-80gb").interconnect.bandwidth.value == pytest.approx(300e9)
    for pcie_only in ("l40s", "l4"):
        s = catalog.load(pcie_only)
        assert s.interconnect.kind == "pcie" and s.interconnect.bandwidth.value == pytest.approx(32e9)
        assert s.num_devices == 8
    a100 = catalog.load("a100-80gb")
    assert a100.tier("host").link.bandwidth.value == pytest.approx(32e9)


def test_gh200_has_a_slower_grace_host_on_nvlink_c2c():
    gh, h100 = catalog.load("gh200"), catalog.load("h100-sxm")
    assert gh.num_devices == 1 and gh.interconnect is None
    assert gh.host.cores.value == 72
    assert gh.host.dispatch_overhead.value > h100.host.dispatch_overhead.value
    link = gh.tier("host").link
    assert link.kind == "nvlink-c2c" and link.bandwidth.value == pytest.approx(450e9)
    # same H100-class compute
    assert gh.device.matrix["bf16"].peak.value == h100.device.matrix["bf16"].peak.value


@pytest.mark.parametrize("sid", ["xeon-8480", "epyc-9654", "lpddr5x-pim"])
def test_cpu_systems_are_their_own_device(sid):
    s = catalog.load(sid)
    assert s.device.kind == "cpu"
    assert [lv.name for lv in s.device.memory] == ["l1", "l2", "l3", "dram"]
    assert s.device.compute_units.value == s.host.cores.value
    assert s.device.kernel_latency.value < 20e-6
    assert "host" not in s.tier_names  # host DRAM is the device's dram, not a far tier


def test_xeon_has_amx_bf16_far_above_avx512_fp32():
    d = catalog.load("xeon-8480").device
    assert d.matrix["bf16"].peak.value > 10 * d.matrix["fp32"].peak.value


def test_cxl_tiers():
    x8, x16 = catalog.load_tier("cxl-expander-x8"), catalog.load_tier("cxl-expander-x16")
    assert x8.link.bandwidth.value == pytest.approx(32e9) and x16.link.bandwidth.value == pytest.approx(64e9)
    for t in (x8, x16):
        assert t.kind == "cxl" and t.link.kind == "cxl" and t.link.access == "cacheline"
        assert t.link.granularity.value == 64
        assert 170e-9 <= t.link.latency.value <= 250e-9
    assert x8.bandwidth.value == pytest.approx(36e9)
    epyc = catalog.load("epyc-9654")
    assert epyc.tier_names == ["cxl"]


def test_h100_sxm_cxl_is_h100_plus_an_expander():
    base, cxl = catalog.load("h100-sxm"), catalog.load("h100-sxm-cxl")
    assert cxl.tier_names == ["host", "cxl"]
    assert cxl.tier("cxl").link.bandwidth.value == pytest.approx(64e9)
    assert cxl.device == base.device and cxl.host == base.host and cxl.num_devices == base.num_devices


@pytest.mark.parametrize("sid", ["hbm3-pim", "lpddr5x-pim"])
def test_pim_systems_have_a_pim_tier(sid):
    s = catalog.load(sid)
    t = s.tier("pim")
    assert t.kind == "pim" and t.pim is not None
    assert t.pim.internal_bandwidth.value > t.link.bandwidth.value
    assert t.pim.mode_switch.value > 0
    assert set(t.pim.dtypes) <= {"fp16", "bf16", "int8", "fp32"}
    # PIM FLOP/s = internal bandwidth x ops per byte (at most 1 FLOP per byte for fp16 GEMV)
    assert t.pim.peak.value <= t.pim.internal_bandwidth.value * 1.0


def test_hbm3_pim_follows_attacc():
    t = catalog.load("hbm3-pim").tier("pim")
    stacks = t.link.bandwidth.value / 670e9
    assert stacks == pytest.approx(round(stacks), rel=1e-3)
    assert t.pim.internal_bandwidth.value / t.link.bandwidth.value == pytest.approx(9, rel=0.01)
    assert t.link.efficiency(1e9) == pytest.approx(0.85)


def test_lpddr5x_pim_boost_within_geniepim_range():
    t = catalog.load("lpddr5x-pim").tier("pim")
    assert 4 <= t.pim.internal_bandwidth.value / 120e9 <= 8


def test_load_returns_a_fresh_copy():
    a = catalog.load("h100-sxm")
    a.num_devices = 1
    assert catalog.load("h100-sxm").num_devices == 8
    assert catalog.load(a) is a


# --- base: merging -------------------------------------------------------------------


def test_base_merges_overrides_and_inherits_the_rest(tmp_path):
    p = write(tmp_path, "slow-host.yaml", """\
        base: h100-sxm
        name: H100 with a slow host
        num_devices: 4
        host:
          dispatch_overhead: {value: 25 us, source: what-if}
        device:
          kernel_latency: {value: 5 us, source: what-if}
        """)
    s = catalog.load(str(p))
    base = catalog.load("h100-sxm")
    assert s.id == "slow-host"  # no id: the file name
    assert s.name == "H100 with a slow host" and s.num_devices == 4
    assert s.host.dispatch_overhead.value == pytest.approx(25e-6)
    assert s.host.dispatch_overhead.source == "what-if"
    assert s.host.cores == base.host.cores  # host given by id in the base, merged key by key
    assert s.device.kernel_latency.value == pytest.approx(5e-6)
    assert s.device.matrix == base.device.matrix and s.device.memory == base.device.memory
    assert s.tier_names == ["host"]


def test_base_lists_replace_null_removes_attach_appends(tmp_path):
    p = write(tmp_path, "what-if.yaml", """\
        base: hbm3-pim
        id: pim-plus-cxl
        interconnect: null
        attach: [cxl-expander-x8]
        device:
          operand_level: null
          memory:
            - name: hbm
              capacity: {value: 40 GB, source: what-if}
              bandwidth: {value: 2 TB/s, source: what-if}
              latency: {value: 600 ns, source: what-if}
              efficiency: {value: 0.9, source: what-if}
              persistent: {value: true, source: what-if}
        """)
    s = catalog.load(str(p))
    assert s.id == "pim-plus-cxl"
    assert [lv.name for lv in s.device.memory] == ["hbm"]
    assert s.device.main_memory.bandwidth.value == pytest.approx(2e12)
    assert s.tier_names == ["host", "pim", "cxl"]
    assert s.interconnect is None


def test_null_removes_a_base_key(tmp_path):
    p = write(tmp_path, "no-fabric.yaml", "base: h100-sxm\ninterconnect: null\nhost_link: null\n")
    s = catalog.load(str(p))
    assert s.interconnect is None and s.tier_names == []


def test_a_new_value_does_not_inherit_the_old_source(tmp_path):
    p = write(tmp_path, "nosrc.yaml", "base: h100-sxm\ndevice:\n  kernel_latency: {value: 5 us}\n")
    msg = one_line_error(str(p))
    assert "device.kernel_latency" in msg and "source" in msg


def test_base_chains_through_files_and_detects_cycles(tmp_path):
    write(tmp_path, "a.yaml", "base: h100-sxm\nnum_devices: 2\n")
    b = write(tmp_path, "b.yaml", "base: a.yaml\nname: B\n")
    s = catalog.load(str(b))
    assert (s.id, s.name, s.num_devices) == ("b", "B", 2)
    write(tmp_path, "c.yaml", "base: d.yaml\n")
    d = write(tmp_path, "d.yaml", "base: c.yaml\n")
    assert "cycle" in one_line_error(str(d))


def test_unknown_base(tmp_path):
    p = write(tmp_path, "x.yaml", "base: h900\n")
    msg = one_line_error(str(p))
    assert "base" in msg and "h900" in msg and "h100-sxm" in msg


# --- bad input -------------------------------------------------------------------------


def test_unknown_components():
    with pytest.raises(SpecError, match="unknown host 'nope'"):
        catalog.load_host("nope")
    with pytest.raises(SpecError, match="unknown tier 'nope'; known: cxl-expander-x16"):
        catalog.load_tier("nope")


def test_unknown_id_lists_the_known_ones():
    msg = one_line_error("h900")
    assert "unknown hardware 'h900'" in msg and "h100-sxm" in msg


def test_missing_file():
    assert "does not exist" in one_line_error("/nonexistent/dir/machine.yaml")


def test_malformed_yaml_names_the_line(tmp_path):
    p = write(tmp_path, "bad.yaml", "id: x\nname: [unclosed\nhost: x86-server\n")
    msg = one_line_error(str(p))
    assert "not valid YAML" in msg and "line" in msg


def test_top_level_must_be_a_mapping(tmp_path):
    p = write(tmp_path, "list.yaml", "- a\n- b\n")
    assert "mapping" in one_line_error(str(p))


@pytest.mark.parametrize(
    "override, field, reason",
    [
        ("device:\n  compute_units: {value: -5, source: x}\n", "device.compute_units", ">= 1"),
        ("host:\n  cores: {value: 56}\n", "host.cores", "source"),
        ("device:\n  kernel_latency: {value: 3 GB, source: x}\n", "device.kernel_latency", "not a time unit"),
        ("device:\n  matrix:\n    bf17: {peak: {value: 1 TFLOP/s, source: x}, efficiency: {value: 0.5, source: x}}\n",
         "device.matrix", "unknown dtype 'bf17'"),
        ("colour: red\n", "colour", "xtra"),
        ("device:\n  colour: red\n", "device.colour", "xtra"),
        ("host_link:\n  bandwidth: {value: 64 GB, source: x}\n", "host_link.bandwidth", "not a bandwidth unit"),
        ("host: no-such-host\n", "host", "unknown host 'no-such-host'"),
        ("attach: [no-such-tier]\n", "attach", "unknown tier 'no-such-tier'"),
        ("num_devices: 0\n", "num_devices", "greater than or equal to 1"),
    ],
)
def test_bad_specs_fail_with_one_line_naming_the_field(tmp_path, override, field, reason):
    p = write(tmp_path, "bad.yaml", "base: h100-sxm\n" + override)
    msg = one_line_error(str(p))
    assert field in msg and reason in msg, msg
    assert str(p) in msg


def test_a_full_document_without_a_host(tmp_path):
    doc = yaml.safe_load((catalog.CATALOG / "systems" / "a100-80gb.yaml").read_text())
    del doc["host"]
    p = tmp_path / "nohost.yaml"
    p.write_text(yaml.safe_dump(doc))
    assert "host: missing" in one_line_error(str(p))


def test_resolve_accepts_a_document_in_memory():
    doc = yaml.safe_load((catalog.CATALOG / "systems" / "l4.yaml").read_text())
    s = catalog.resolve(doc)
    assert isinstance(s, SystemSpec) and s.id == "l4"
