"""hw_models.spec: pydantic specs with units and sources (validated without the catalog)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hw_models.quantity import Bandwidth, Bytes, Count, EfficiencyCurve, flat
from hw_models.spec import DeviceSpec, LinkSpec, SystemSpec, TierSpec


def q(value, source="test"):
    return {"value": value, "source": source}


def curve(points=None, value=None):
    out = {"source": "test"}
    if points is not None:
        out["points"] = points
    if value is not None:
        out["value"] = value
    return out


def level(name, capacity="1 GiB", bandwidth="1 TB/s", persistent=True):
    return {"name": name, "capacity": q(capacity), "bandwidth": q(bandwidth), "latency": q("100 ns"),
            "efficiency": curve(value=0.8), "persistent": q(persistent)}


def device_doc():
    return {
        "name": "toy",
        "kind": "gpu",
        "compute_units": q(10),
        "matrix": {"bf16": {"peak": q("100 TFLOP/s"), "efficiency": curve(value=0.8)}},
        "vector": {"fp32": {"peak": q("10 TFLOP/s"), "efficiency": curve(value=0.7)}},
        "memory": [level("l2", "50 MB", "10 TB/s"), level("hbm", "80 GB", "3 TB/s")],
        "kernel_latency": q("3 us"),
        "atomics": {"update_rate": q("10 G/s"), "same_address_rate": q("1 G/s")},
        "tiles": {"shapes": [[128, 128]], "source": "test"},
        "operand_level": "l2",
        "overlap": q(2),
        "serial_dispatch": q(False),
    }


def link_doc(kind="pcie"):
    return {"name": "l", "kind": kind, "bandwidth": q("64 GB/s"), "latency": q("2 us"), "efficiency": q(0.85)}


def host_doc():
    return {
        "name": "h",
        "cores": q(8),
        "dispatch_overhead": q("10 us"),
        "graph_launch": q("10 us"),
        "graph_node_cost": q("1 us"),
        "library_call": q("1 us"),
        "memory_capacity": q("64 GiB"),
        "memory_bandwidth": q("100 GB/s"),
        "memory_latency": q("100 ns"),
    }


def system_doc():
    return {"id": "toy", "name": "Toy", "host": host_doc(), "device": device_doc()}


def test_a_minimal_system_validates_and_converts_units():
    s = SystemSpec.model_validate(system_doc())
    assert s.device.main_memory.name == "hbm"
    assert s.device.main_memory.capacity.value == 80e9
    assert s.device.level("l2").bandwidth.value == 10e12
    assert s.device.matrix["bf16"].peak.value == 100e12
    assert s.num_devices == 1 and s.tiers == []


def test_quantity_keeps_its_source_and_formats_with_its_unit():
    b = Bandwidth.model_validate({"value": "3.35 TB/s", "source": "datasheet"})
    assert b.source == "datasheet"
    assert str(b) == "3.35 TB/s"
    assert str(Bytes.model_validate(q("80 GiB"))) == "80 GiB"


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"value": "80 GiB"}, "source"),
        ({"value": "80 GiB", "source": ""}, "source"),
        ("80 GiB", "source"),
        ({"value": "-1 GiB", "source": "x"}, "> 0"),
        ({"value": "0 GiB", "source": "x"}, "> 0"),
        ({"value": "2e18 B", "source": "x"}, "not plausible"),
        ({"value": "80 GB/s", "source": "x"}, "not a bytes unit"),
        ({"value": 80, "source": "x"}, "no unit"),
        ({"value": "80 GiB", "source": "x", "note": "extra"}, "xtra"),
    ],
)
def test_bad_quantities_are_rejected_with_a_reason(data, fragment):
    with pytest.raises(ValidationError) as e:
        Bytes.model_validate(data)
    assert fragment in str(e.value)


def test_infinite_values_are_rejected():
    with pytest.raises(ValidationError, match="finite"):
        Count.model_validate(q(float("inf")))
    with pytest.raises(ValidationError):
        Bandwidth.model_validate(q("inf B/s"))


def test_unknown_dtype_is_rejected():
    doc = device_doc()
    doc["matrix"]["bf17"] = doc["matrix"]["bf16"]
    with pytest.raises(ValidationError, match="unknown dtype 'bf17'"):
        DeviceSpec.model_validate(doc)


def test_device_needs_a_memory_level_and_a_dtype():
    doc = device_doc()
    doc["memory"] = []
    with pytest.raises(ValidationError):
        DeviceSpec.model_validate(doc)
    doc = device_doc()
    doc["vector"] = {}
    with pytest.raises(ValidationError, match="at least one dtype"):
        DeviceSpec.model_validate(doc)


def test_extra_fields_are_rejected_everywhere():
    for mutate in (
        lambda d: d.update(colour="red"),
        lambda d: d["device"].update(colour="red"),
        lambda d: d["host"].update(colour="red"),
        lambda d: d["device"]["memory"][0].update(colour="red"),
    ):
        doc = system_doc()
        mutate(doc)
        with pytest.raises(ValidationError, match="colour"):
            SystemSpec.model_validate(doc)


def test_pim_tier_needs_a_pim_section():
    tier = {"name": "p", "kind": "pim", "capacity": q("8 GiB"), "bandwidth": q("100 GB/s"),
            "latency": q("100 ns"), "link": link_doc("internal")}
    with pytest.raises(ValidationError, match="needs a 'pim' section"):
        TierSpec.model_validate(tier)
    tier["pim"] = {"internal_bandwidth": q("1 TB/s"), "peak": q("1 TFLOP/s"), "mode_switch": q("1 us"),
                   "max_rows": q(8)}
    assert TierSpec.model_validate(tier).pim.dtypes == ["fp16", "bf16"]


def test_link_kind_and_access_are_closed_sets():
    with pytest.raises(ValidationError):
        LinkSpec.model_validate(link_doc("carrier-pigeon"))
    doc = link_doc()
    doc["access"] = "telepathy"
    with pytest.raises(ValidationError):
        LinkSpec.model_validate(doc)


def test_duplicate_tier_names_and_tier_lookup():
    tier = {"name": "cxl", "kind": "cxl", "capacity": q("8 GiB"), "bandwidth": q("30 GB/s"),
            "latency": q("200 ns"), "link": link_doc("cxl")}
    doc = system_doc()
    doc["tiers"] = [tier, copy.deepcopy(tier)]
    with pytest.raises(ValidationError, match="used twice"):
        SystemSpec.model_validate(doc)
    doc["tiers"] = [tier]
    s = SystemSpec.model_validate(doc)
    assert s.tier("cxl").link.bandwidth.value == 64e9
    with pytest.raises(KeyError, match="has no tier 'pim'"):
        s.tier("pim")


@pytest.mark.parametrize("where, value, fragment", [
    (("device", "memory", 1, "bandwidth"), "0 TB/s", "> 0"),
    (("device", "matrix", "bf16", "peak"), "0 FLOP/s", "> 0"),
    (("device", "compute_units"), 0, ">= 1"),
    (("device", "compute_units"), 1e26, "not plausible"),
    (("device", "memory", 1, "capacity"), "1e30 B", "not plausible"),
    (("host", "dispatch_overhead"), "5 s", "not plausible"),
])
def test_spec_numbers_out_of_range_name_the_field(where, value, fragment):
    doc = system_doc()
    node = doc
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = q(value)
    with pytest.raises(ValidationError) as e:
        SystemSpec.model_validate(doc)
    assert fragment in str(e.value) and str(where[-1]) in str(e.value)


def test_num_devices_is_bounded():
    doc = system_doc()
    doc["num_devices"] = int(1e26)
    with pytest.raises(ValidationError, match="num_devices"):
        SystemSpec.model_validate(doc)


def test_switches_need_a_boolean_and_a_source():
    doc = system_doc()
    doc["device"]["serial_dispatch"] = {"value": "yes", "source": "x"}
    with pytest.raises(ValidationError, match="true or false"):
        SystemSpec.model_validate(doc)
    doc["device"]["serial_dispatch"] = {"value": True}
    with pytest.raises(ValidationError, match="source"):
        SystemSpec.model_validate(doc)


def test_cacheline_links_need_their_line_size_and_lines_in_flight():
    doc = link_doc("cxl")
    doc["access"] = "cacheline"
    with pytest.raises(ValidationError, match="outstanding_lines"):
        LinkSpec.model_validate(doc)
    doc.update(granularity=q("64 B"), outstanding_lines=q(256))
    assert LinkSpec.model_validate(doc).outstanding_lines.value == 256


def test_operand_level_must_be_a_memory_level():
    doc = device_doc()
    doc["operand_level"] = "l7"
    with pytest.raises(ValidationError, match="operand_level"):
        DeviceSpec.model_validate(doc)


def test_efficiency_curve_sorts_interpolates_and_holds_flat():
    c = EfficiencyCurve.model_validate(curve(points=[[1e9, 0.8], [1e3, 0.1]]))
    assert c.points[0] == (1e3, 0.1)
    assert c(1e3) == pytest.approx(0.1)
    assert c(1e6) == pytest.approx(0.45)  # halfway in log10
    assert c(1.0) == pytest.approx(0.1) and c(1e15) == pytest.approx(0.8)
    assert np.allclose(c(np.array([1e3, 1e9])), [0.1, 0.8])
    assert flat(0.5, "x")(123.0) == 0.5
    assert EfficiencyCurve.model_validate(curve(value=0.6))(1e9) == 0.6


@pytest.mark.parametrize("points", [[], [[0, 0.5]], [[10, 0.0]], [[10, 1.5]]])
def test_bad_efficiency_curves(points):
    with pytest.raises(ValidationError):
        EfficiencyCurve.model_validate(curve(points=points))


@given(
    pts=st.lists(
        st.tuples(st.floats(1.0, 1e15), st.floats(0.01, 1.0)), min_size=1, max_size=6,
        unique_by=lambda p: p[0],
    ),
    x=st.floats(0.0, 1e18),
)
def test_efficiency_stays_within_the_curves_range(pts, x):
    c = EfficiencyCurve(points=pts, source="t")
    lo, hi = min(e for _, e in pts), max(e for _, e in pts)
    assert lo - 1e-12 <= c(x) <= hi + 1e-12
