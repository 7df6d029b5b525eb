"""The page itself: self-contained, every figure embedded, and (when chromium is there)
loading in a real headless browser with no console messages and every image decoded."""

import base64
import re

import pandas as pd
import pytest
from report_fakes import fake_step

from reports import browser
from reports.accuracy_plot import error_by_kind
from reports.report import comparison, section, write_html
from reports.sections import accuracy_section, frontier_section


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    s1, f1 = fake_step(n_ops=60, dispatch_s=5e-6, kernel_s=(1e-6, 3e-6))
    s2, f2 = fake_step(n_ops=60, dispatch_s=1e-6, kernel_s=(4e-6,), streams=2)
    s2["hardware"], s2["bottleneck"] = "a100-80gb", "memory"
    secs = [section(s1, f1, out / "a"), section(s2, f2, out / "b")]
    pvm = pd.DataFrame({"kind": ["matmul", "norm"] * 5, "measured_s": [1e-5 * (i + 1) for i in range(10)],
                        "predicted_s": [1.05e-5 * (i + 1) for i in range(10)]})
    acc = accuracy_section(pvm, out, "test cpu")
    fr = pd.DataFrame({"hardware": ["x"] * 3 + ["y"] * 3, "batch": [1, 4, 16] * 2,
                       "tpot_s": [1e-3, 1.2e-3, 2e-3, 3e-3, 3.1e-3, 3.5e-3], "tokens_per_s": [1000, 3333, 8000, 333, 1290, 4571],
                       "fits": [True] * 6, "reason": [""] * 6})
    front = frontier_section(fr, out, "tiny", 128)
    path = write_html(out, secs, title="roofsim report: tiny", subtitle="s", command="roofsim report tiny",
                      comparison_df=comparison(secs), accuracy=acc, frontier=front)
    return path, secs, acc, front, pvm


def test_self_contained_no_network_references(page):
    path, *_ = page
    text = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "<link" not in text and "@import" not in text and "url(http" not in text
    srcs = re.findall(r'<img[^>]+src="([^"]+)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs:  # each embedded PNG is a real PNG
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_section_and_figure_is_on_the_page_and_on_disk(page):
    path, secs, acc, front, pvm = page
    text = path.read_text()
    expected = [(s.key, f) for s in secs for f in s.figures] + [("accuracy", f) for f in acc["figures"]]
    expected += [("frontier", f) for f in front["figures"]]
    assert text.count('class="report-figure"') == len(expected) == 2 * 2 + 2 + 1
    for key, f in expected:
        assert f'id="fig-{key}-{f.key}"' in text
        assert f.png.stat().st_size > 0 and f.svg.read_text().lstrip().startswith(("<?xml", "<svg"))
    for s in secs:  # each run's plain-language verdict is at the top, its details in its section
        assert s.summary_text.startswith(s.headline) and s.headline in text and s.details in text
        assert text.index(s.headline) < text.index("<nav>") < text.index(s.details)
    assert "Side by side" in text and "a100-80gb" in text
    assert len(error_by_kind(pvm)) == 2


def test_breakdown_tables_sum_to_step_time(page):
    path, secs, *_ = page
    for s in secs:
        run_dir = path.parent / ("a" if s.hardware == "h100-sxm" else "b")
        for name in ("breakdown_by_kind.csv", "breakdown_by_bound.csv"):
            total = pd.read_csv(run_dir / name)["time_s"].sum()
            assert abs(total - s.summary["step_time_s"]) <= 1e-9 * s.summary["step_time_s"]


@pytest.mark.skipif(browser.find_chromium() is None, reason="chromium is not installed: run scripts/install-chromium.sh")
def test_page_loads_in_headless_chromium(page, tmp_path):
    path, *_ = page
    check = browser.check_page(path, tmp_path / "shot.png")
    assert check.console == []
    assert check.images_total == path.read_text().count("<img") > 0
    assert check.images_ok == check.images_total
    assert check.screenshot is not None and check.screenshot.stat().st_size > 10_000
    assert check.dom.count('class="report-figure"') == check.images_total
