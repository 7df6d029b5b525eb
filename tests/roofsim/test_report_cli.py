"""`roofsim report` end to end on a small real model (gpt2 decode on two machines)."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from roofsim.cli import main

HW = ("h100-sxm",)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpt2-report")
    hw = ",".join(HW)
    rc = main(["report", "gpt2", "--hardware", hw, "--phase", "decode", "--context", "256",
               "--frontier-batch", "1,8", "--out", str(out)])
    assert rc == 0
    return out


def test_writes_one_self_contained_page_and_its_files(report, capsys):
    html = (report / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    for hw in HW:
        run = report / f"{hw}-decode"
        for f in ("roofline.png", "roofline.svg", "timeline.png", "timeline.svg", "breakdown.png", "ops.csv",
                  "top_ops.csv", "breakdown_by_kind.csv", "breakdown_by_bound.csv"):
            assert (run / f).stat().st_size > 0, f
        assert f'id="fig-{hw}-decode-roofline"' in html and f'id="fig-{hw}-decode-timeline"' in html
    assert (report / "frontier.csv").exists() and 'id="fig-frontier-frontier"' in html
    assert "decode of gpt2 on h100-sxm" in html


def test_every_op_of_ops_csv_is_a_roofline_point_under_every_ceiling(report):
    from hw_models.catalog import load

    for hw in HW:
        run = report / f"{hw}-decode"
        ops = pd.read_csv(run / "ops.csv")
        stats = json.loads((run / "roofline.json").read_text())
        assert stats["n_points"] == int((ops["time_s"] > 0).sum())
        dev = load(hw).device
        assert stats["n_ceilings"] == len(dev.memory) + len(dev.matrix) + len(dev.vector)


def test_breakdown_sums_to_simulated_step_time(report):
    comp = pd.read_csv(report / "comparison.csv").set_index("hardware")
    for hw in HW:
        run = report / f"{hw}-decode"
        step_ms = comp.loc[hw, "step_ms"]
        for name in ("breakdown_by_kind.csv", "breakdown_by_bound.csv"):
            assert abs(pd.read_csv(run / name)["time_s"].sum() * 1e3 - step_ms) <= 1e-6 * step_ms


def test_timeline_has_host_and_stream_lanes(report):
    tl = pd.read_csv(report / f"{HW[0]}-decode" / "timeline.csv")
    assert set(tl["lane_type"]) >= {"host", "stream"}
    # the host issues every launched kernel: its lane is never longer than the step
    assert tl[tl["lane_type"] == "host"]["end_s"].max() <= tl["end_s"].max() + 1e-12


def test_frontier_tokens_per_s_grow_with_batch(report):
    fr = pd.read_csv(report / "frontier.csv")
    for _, g in fr[fr["fits"]].groupby("hardware"):
        g = g.sort_values("batch")
        assert g["tokens_per_s"].is_monotonic_increasing


def test_page_in_headless_chromium(report, tmp_path):
    from reports import browser

    if browser.find_chromium() is None:
        pytest.skip("chromium is not installed: run scripts/install-chromium.sh")
    check = browser.check_page(report / "report.html", tmp_path / "report.png")
    assert check.console == []
    assert check.images_ok == check.images_total > 0
    assert check.screenshot is not None


@pytest.mark.parametrize("argv,words", [
    (["report", "gpt2", "--hardware", "no-such-gpu", "--out", "{out}"], "unknown hardware"),
    (["report", "gpt2", "--hardware", "h100-sxm", "--batch", "0", "--out", "{out}"], "--batch"),
    (["report", "gpt2", "--hardware", "h100-sxm", "--frontier-batch", "1,x", "--out", "{out}"], "--frontier-batch"),
    (["report", "gpt2", "--hardware", "h100-sxm", "--measurements", "{out}/nothing", "--out", "{out}"], "--measurements"),
])
def test_bad_input_is_one_line_and_exit_2(argv, words, tmp_path, capsys):
    rc = main([a.replace("{out}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and words in err and len(err.splitlines()) == 1


def test_bad_phase_is_rejected_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", "gpt2", "--hardware", "h100-sxm", "--phase", "train", "--out", str(Path(tmp_path))])
    assert e.value.code == 2


def _measurement_dir(root: Path) -> Path:
    """A measurement directory as `roofsim calibrate` leaves it, with predictions already made
    and the h100-sxm catalog spec as its hardware.yaml (so its points overlay that roofline)."""
    import shutil

    from hw_models.catalog import CATALOG

    d = root / "measured"
    d.mkdir()
    rows = []
    for i, (kind, flops, nbytes) in enumerate([("matmul", 2e9, 6e6), ("matmul", 2e10, 3e7), ("gemv", 3.3e7, 3.3e7),
                                               ("elementwise", 1e6, 1.2e7), ("norm", 5e6, 8e6), ("copy", 0.0, 1e7)]):
        measured = max(flops / 6e14, nbytes / 2.8e12) + 4e-6
        rows.append({"case_id": f"c{i}", "family": kind, "kind": kind, "shape": json.dumps({"i": i}), "dtype": "bf16",
                     "device": "cuda",
                     "status": "ok", "median_s": measured, "flops": flops, "bytes": nbytes,
                     "predicted_s": measured * (1.0 + 0.04 * (i - 2))})
    pd.DataFrame(rows).to_csv(d / "measurements.csv", index=False)
    (d / "meta.json").write_text(json.dumps({"device_name": "test H100"}))
    shutil.copy(CATALOG / "systems" / "h100-sxm.yaml", d / "hardware.yaml")
    return d


def test_measurements_add_accuracy_figures_and_overlay_the_roofline(tmp_path):
    mdir = _measurement_dir(tmp_path)
    out = tmp_path / "report"
    assert main(["report", "gpt2", "--hardware", "h100-sxm", "--context", "128", "--frontier-batch", "none",
                 "--measurements", str(mdir), "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    for key in ("predicted_vs_measured", "error_by_kind", "measured_roofline"):
        assert f'id="fig-accuracy-{key}"' in html and (out / f"{key}.png").stat().st_size > 0
    pvm = pd.read_csv(out / "predicted_vs_measured.csv")
    assert len(pvm) == 6
    table = pd.read_csv(out / "error_by_kind.csv")
    assert table["n"].sum() == 6 and set(table["kind"]) == {"matmul", "gemv", "elementwise", "norm", "copy"}
    run = out / "h100-sxm-decode"
    ops = pd.read_csv(run / "ops.csv")
    stats = json.loads((run / "roofline.json").read_text())
    measured_with_work = 5  # the copy has no FLOPs: no intensity, so no roofline point
    assert stats["n_points"] == int((ops["time_s"] > 0).sum()) + measured_with_work
    assert "test H100" in html


def test_each_run_says_what_its_prediction_rests_on(report):
    comp = pd.read_csv(report / "comparison.csv").set_index("hardware")
    assert ((comp["measured_share"] >= 0) & (comp["measured_share"] <= 1 + 1e-9)).all()
    assert "This prediction rests on spec numbers that are" in (report / "report.html").read_text()
