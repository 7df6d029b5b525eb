import re

import pytest
from report_fakes import fake_step

from reports.breakdown import attribute
from reports.frames import device_ops
from reports.summary import describe_bound, summarize


@pytest.mark.parametrize("bound,words", [
    ("host/launch", "host dispatch"), ("host", "host dispatch"), ("memory:hbm", "HBM bandwidth"),
    ("dev0.l2", "L2 bandwidth"), ("compute:bf16", "bf16 compute"), ("link:cxl", "cxl link"),
    ("atomic", "atomic contention"), ("latency", "per-kernel latency"),
])
def test_bound_words(bound, words):
    assert words in describe_bound(bound)


def _numbers(text: str) -> list[float]:
    return [float(x.replace(",", "")) for x in re.findall(r"\d[\d,]*\.?\d*", text)]


def test_summary_is_computed_from_the_numbers():
    summary, frame = fake_step(n_ops=20, dispatch_s=10e-6, kernel_s=(2e-6,), link=False)
    text = summarize(summary, device_idle_frac=0.8)
    step_us = summary["step_time_s"] * 1e6
    assert text.startswith("decode of tiny on h100-sxm")
    assert f"{step_us:.3g} µs/token" in text
    assert f"{1 / summary['step_time_s']:,.0f} tokens/s" in text
    assert "bound by host dispatch" in text and "idle 80% of the step" in text
    assert "the device waits on the host" in text  # host 200 us > device 40 us
    floor = max(summary["memory_floor_s"], summary["compute_floor_s"])
    assert f"{summary['step_time_s'] / floor:.1f}× its floor" in text


def test_device_bound_step_does_not_blame_the_host():
    summary, frame = fake_step(n_ops=20, dispatch_s=1e-6, kernel_s=(20e-6,), link=False)
    summary["bottleneck"] = "memory"
    summary["host_time_s"] = 20e-6
    ops = device_ops(frame)
    by_kind = attribute(ops, 0, summary["step_time_s"], "kind")
    text = summarize(summary, device_idle_frac=0.01, by_kind=by_kind, device_word="CPU")
    assert "bound by memory bandwidth" in text and "CPU is idle 1%" in text
    assert "waits on the host" not in text
    assert f"goes to {by_kind.iloc[0]['kind']} ops" in text


def test_prefill_reports_time_to_first_token():
    summary, _ = fake_step()
    summary["phase"] = "prefill"
    text = summarize(summary, device_idle_frac=0.0, prompt=512)
    assert "to first token for 512 prompt tokens" in text
    assert f"{512 / summary['step_time_s']:,.0f} tokens/s" in text
