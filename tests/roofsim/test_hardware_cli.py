"""``roofsim hardware list|show``."""

from __future__ import annotations

import json

import pytest

from hw_models import catalog, units
from roofsim.cli import main


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_list_table_has_a_row_per_system_and_the_components(capsys):
    rc, out, err = run(capsys, "hardware", "list")
    assert rc == 0 and err == ""
    lines = out.splitlines()
    for sid in catalog.list_systems():
        assert any(line.startswith(sid + " ") for line in lines), sid
    for cid in catalog.list_hosts() + catalog.list_tiers():
        assert any(line.startswith(cid + " ") for line in lines), cid
    h100 = next(line for line in lines if line.startswith("h100-sxm "))
    assert "989 TFLOP/s bf16" in h100 and "3.35 TB/s" in h100 and "host" in h100


def test_list_json_carries_si_numbers(capsys):
    rc, out, _ = run(capsys, "hardware", "list", "--format", "json")
    assert rc == 0
    data = json.loads(out)
    rows = {r["id"]: r for r in data["systems"]}
    assert set(rows) == set(catalog.list_systems())
    assert rows["a100-80gb"]["memory_bandwidth"] == pytest.approx(2.04e12)
    assert rows["h100-sxm"]["devices"] == 8
    assert rows["h100-sxm-cxl"]["tiers"] == ["host", "cxl"]
    assert rows["xeon-8480"]["matrix_dtype"] == "bf16"
    assert {r["id"] for r in data["hosts"]} == set(catalog.list_hosts())
    tiers = {r["id"]: r for r in data["tiers"]}
    assert tiers["cxl-expander-x16"]["link_bandwidth_per_direction"] == pytest.approx(64e9)
    assert tiers["hbm3-pim-x5"]["pim_internal_bandwidth"] > 0


@pytest.mark.parametrize("sid", ["h100-sxm", "hbm3-pim", "xeon-8480"])
def test_show_prints_every_number_with_unit_and_source(capsys, sid):
    rc, out, err = run(capsys, "hardware", "show", sid)
    assert rc == 0 and err == ""
    for title in ("host", "device compute", "memory levels", "tiers and links", "interconnect"):
        assert f"== {title}" in out
    s = catalog.load(sid)
    assert units.fmt(s.host.dispatch_overhead.value, "time") in out
    for lv in s.device.memory:
        assert f"memory[{lv.name}].bandwidth" in out
        assert units.fmt(lv.bandwidth.value, "bandwidth") in out
    # sources wrap across lines in the table; their first words must appear
    flat = " ".join(out.split())
    assert " ".join(s.device.main_memory.bandwidth.source.split()[:4]) in flat
    for dtype in s.device.matrix:
        assert f"matrix.{dtype}.peak" in out


def test_show_pim_tier_fields(capsys):
    _, out, _ = run(capsys, "hardware", "show", "hbm3-pim")
    assert "tiers[pim].pim.internal_bandwidth" in out and "tiers[pim].pim.mode_switch" in out


def test_show_json_round_trips_to_the_same_spec(capsys):
    rc, out, _ = run(capsys, "hardware", "show", "gh200", "--format", "json")
    assert rc == 0
    data = json.loads(out)
    s = catalog.load("gh200")
    assert data["id"] == "gh200"
    assert data["device"]["memory"][-1]["bandwidth"]["value"] == s.device.main_memory.bandwidth.value
    assert data["host"]["dispatch_overhead"]["source"] == s.host.dispatch_overhead.source


def test_show_accepts_a_yaml_path(capsys, tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("base: l4\nnum_devices: 2\n")
    rc, out, _ = run(capsys, "hardware", "show", str(p))
    assert rc == 0 and "mine" in out and "num_devices  2" in out


def test_show_unknown_id_is_one_line_exit_2(capsys):
    rc, out, err = run(capsys, "hardware", "show", "nope")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("roofsim: error:") and "nope" in err


def test_show_bad_file_is_one_line_exit_2(capsys, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("base: h100-sxm\nhost: {cores: {value: -1, source: x}}\n")
    rc, _, err = run(capsys, "hardware", "show", str(p))
    assert rc == 2 and err.count("\n") == 1 and "host.cores" in err


def test_bad_format_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["hardware", "list", "--format", "xml"])
    assert e.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
