"""What a prediction rests on (``simulator.basis``): every part of a step traced to the
spec number that set it, and that number's source sorted into a class."""

from __future__ import annotations

import json

import pytest
import yaml

from hw_models.catalog import load
from roofsim.cli import main
from simulator import simulate
from simulator.basis import basis, source_class
from workloads import build


@pytest.fixture(scope="module")
def decode():
    return build("llama-3.1-8b", phase="decode", batch=1, context=2048, dtype="bf16")


@pytest.mark.parametrize("source,cls", [
    ("measured: fitted to validation/data/vidur-h100/measurements.csv by roofsim calibrate", "measured"),
    ("measured elsewhere: on the Xeon host of the lent H200", "measured elsewhere"),
    ("estimate (check): as the x86 host", "estimate"),
    ("plateau: device-to-device copy measured at about 3.0 TB/s; roll-off is an estimate", "estimate"),
    ("NVIDIA H100 datasheet: HBM3 3.35 TB/s", "published"),
    ("what-if: a faster host", "what-if"),
])
def test_sources_sort_into_classes(source, cls):
    assert source_class(source) == cls


@pytest.mark.parametrize("hw,launch", [("h100-sxm", "eager"), ("h100-sxm-cal", "graph"), ("h200-cal", "eager"),
                                       ("xeon-8480", "eager")])
def test_every_part_of_the_step_is_traced_to_a_sourced_number(decode, hw, launch):
    system = load(hw)
    r = simulate(decode, system, launch=launch)
    b = basis(r, system, launch)
    assert "unattributed" not in b["shares"]
    assert sum(b["shares"].values()) == pytest.approx(1.0, abs=1e-4)
    assert sum(n["share"] for n in b["numbers"]) == pytest.approx(1.0, abs=1e-4)
    for n in b["numbers"]:
        assert n["source"] and n["class"] == source_class(n["source"])


def test_a_calibrated_system_rests_more_on_measurement_than_its_datasheet(decode):
    def measured(hw):
        s = load(hw)
        return basis(simulate(decode, s, launch="graph"), s, "graph")["shares"].get("measured", 0.0)

    assert measured("h100-sxm") == 0.0
    assert measured("h100-sxm-cal") > 0.9


def test_a_what_if_number_shows_as_what_if(decode, tmp_path):
    doc = {"base": "h100-sxm", "id": "slow-host",
           "host": {"dispatch_overhead": {"value": "40 us", "source": "what-if: a slow host"}}}
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(doc))
    system = load(str(path))
    b = basis(simulate(decode, system), system)
    assert b["shares"]["what-if"] > 0.5
    assert b["numbers"][0]["number"] == "host.dispatch_overhead"


def test_simulate_prints_and_returns_the_basis(capsys):
    assert main(["simulate", "gpt2", "--hardware", "a100-80gb-cal", "--context", "256", "--launch", "graph",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sum(doc["basis"]["shares"].values()) == pytest.approx(1.0, abs=1e-4)
    assert main(["simulate", "gpt2", "--hardware", "a100-80gb-cal", "--context", "256"]) == 0
    assert "basis:" in capsys.readouterr().out


def test_the_term_level_basis_of_a_sweep_agrees_with_the_op_level_one(decode):
    # a planner sweep has a step's time by bound, not its ops: read from the terms, the
    # shares come out as the op-level attribution gives them where each term has one number
    from simulator.basis import basis_of_terms

    for hw in ("h100-sxm", "h100-sxm-cal"):
        system = load(hw)
        r = simulate(decode, system, launch="graph")
        fine = basis(r, system, "graph")["shares"]
        coarse = basis_of_terms(r.time_by_bound, system, "bf16", "graph", kernels=r.totals["kernels"])["shares"]
        assert set(coarse) == set(fine)
        for k in fine:
            assert coarse[k] == pytest.approx(fine[k], abs=0.02), (hw, k)
