"""Resource ids and bound labels (hw_models.resource_id): every one the simulator writes
reads back as itself, and a malformed one is a one-line error."""

from __future__ import annotations

import pytest

from hw_models.catalog import load
from hw_models.resource_id import KINDS, BoundLabel, ResourceId, ResourceIdError, parse, parse_bound
from simulator import simulate
from simulator.costmodel import graph_costs
from simulator.placement import Placement
from simulator.scaleout import simulate_scaled, with_nodes
from workloads import build
from workloads.tensor_parallel import shard


@pytest.fixture(scope="module")
def produced():
    """(resource ids, bound labels, (demand resource, demand label) pairs) from real runs:
    far tiers with and without prefetch under TP, PIM, and a collective across nodes."""
    g = build("qwen2.5-0.5b", phase="decode", batch=1, context=128)
    cxl, pim = load("h100-sxm-cxl"), load("hbm3-pim")
    runs = [
        simulate(g, cxl, tp=2, placement=Placement(weights="cxl", kv_cache="host")),
        simulate(g, cxl, tp=2, placement=Placement(weights="cxl", kv_cache="host", prefetch=True), engine="simpy"),
        simulate(g, pim, placement=Placement(weights="pim")),
    ]
    moe = build("mixtral-8x7b", "decode", batch=8, context=128)
    runs += simulate_scaled(moe, with_nodes(load("h100-sxm"), 2), tp=2, ep=8, launch="graph").stages
    ids, labels = set(), set()
    for r in runs:
        ids |= set(r.resources) | set(r.ops["resource"])
        ids |= {x for c in r.copies["resource"] for x in c.split(",")}
        labels |= set(r.ops["bound"])
    pairs = {(d.resource, d.bound)
             for sys_, graph, pl in ((cxl, shard(g, 2), Placement(weights="cxl", kv_cache="host")),
                                     (pim, g, Placement(weights="pim")))
             for c in graph_costs(graph, sys_, pl) for d in c.demands}
    return ids, labels, pairs


def test_every_resource_id_the_simulator_writes_reads_back_as_itself(produced):
    ids = produced[0]
    assert {str(parse(s)) for s in ids} == ids
    # the runs reach every kind, so a new producer of ids cannot go unread here
    assert {parse(s).kind for s in ids} == set(KINDS)
    assert {"dev0.hbm", "cxl.mem", "cxl.link.h2d", "host.link.d2h", "pim.pim", "interconnect.0",
            "network.0", "dev0.launch"} <= ids


def test_every_bound_label_reads_back_as_itself(produced):
    labels = produced[1] | {label for _, label in produced[2]}
    assert {str(parse_bound(b)) for b in labels} == labels
    assert {"memory:hbm", "memory:cxl", "link:cxl", "link:interconnect", "link:network", "pim", "latency"} <= labels


def test_a_demand_is_labelled_by_its_resource(produced):
    pairs = produced[2]
    assert pairs and all(parse(res).bound == parse_bound(label) for res, label in pairs)


@pytest.mark.parametrize("rid", [
    ResourceId("level", "infinity-cache", 3), ResourceId("unit", "atomics", 0), ResourceId("tier", "pim"),
    ResourceId("link", "host", direction="d2h"), ResourceId("pim", "lpddr5x"),
    ResourceId("interconnect", device=7), ResourceId("network", device=12),
])
def test_format_then_parse_is_the_identity(rid):
    assert parse(str(rid)) == rid


@pytest.mark.parametrize("text", ["dev0", "hbm", "cxl.link", "cxl.link.up", "interconnect.x", "dev0.l2.x",
                                  "a b.mem", ""])
def test_a_malformed_id_is_a_one_line_user_error(text):
    with pytest.raises(ResourceIdError) as e:
        parse(text)
    msg = str(e.value)
    assert "\n" not in msg and repr(text) in msg and "<tier>.link.h2d|d2h" in msg
    assert e.value.user_facing


@pytest.mark.parametrize("text", ["memory", "link:", "compute:bf16", "memory:dev0.hbm", "bogus"])
def test_a_malformed_bound_label_is_a_one_line_user_error(text):
    with pytest.raises(ResourceIdError, match="malformed bound label"):
        parse_bound(text)


@pytest.mark.parametrize("bad", [
    dict(kind="pim", name="mem"),  # "pim.mem" is the memory of a tier named pim
    dict(kind="tier", name="dev0"),  # "dev0.mem" is device 0's level "mem"
    dict(kind="level", name="compute", device=0),  # a unit
    dict(kind="link", name="cxl"),  # no direction
    dict(kind="interconnect"),  # no device
    dict(kind="disk", name="x"),
])
def test_a_record_that_would_not_read_back_is_refused(bad):
    with pytest.raises(ResourceIdError, match="reads back as itself"):
        ResourceId(**bad)
    with pytest.raises(ResourceIdError):
        BoundLabel("memory")
