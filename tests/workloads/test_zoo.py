"""Every zoo id builds (small steps), list_models, sketches and user callables."""

from __future__ import annotations

import textwrap

import pytest

from workloads import build, list_models
from workloads.sketches import sketch_rows
from workloads.zoo import _zoo

LLMS = [m for m, e in _zoo().items() if e["kind"] == "llm"]


def test_list_models_rows():
    rows = {r["id"]: r for r in list_models()}
    assert set(rows) == set(_zoo())
    assert rows["llama-3.1-8b"]["params"] == 8_030_261_248
    assert rows["llama-3.1-70b"]["layers"] == 80
    assert all(r["source"] for r in rows.values())


@pytest.mark.parametrize("model", LLMS)
def test_every_llm_builds(model):
    for phase in ("decode", "prefill"):
        g = build(model, phase, batch=1, context=32, prompt=8)
        c = g.meta["config"]
        assert len([op for op in g.ops if op.kind == "attention"]) == c["num_layers"]
        # a MoE step runs only its routed experts: at least half the top-k share of the parameters
        active = 0.1 if not c["num_experts"] else 0.5 * c["top_k"] / c["num_experts"]
        assert g.flops > 2 * c["params"] * active
        assert not g.unknown_ops(), g.unknown_ops()
        assert g.meta["phase"] == phase


@pytest.mark.parametrize("model,gflops", [("vit-b-16", 35.0), ("resnet-50", 8.2)])
def test_vision_models_build(model, gflops):
    g = build(model, batch=1, dtype="fp32")
    # published forward costs: ViT-B/16 ~17.6 GMAC, ResNet-50 ~4.1 GMAC at 224x224
    assert g.flops == pytest.approx(gflops * 1e9, rel=0.1)
    assert g.meta["phase"] == "forward"
    assert not g.unknown_ops()


@pytest.mark.parametrize("name,s", [("countsketch", 1), ("sparsestack", 4)])
def test_sketch_updates_and_distinct_targets(name, s):
    n, d, k = 3000, 16, 512
    g = build(f"{name}[n={n},d={d},k={k},s={s}]", dtype="fp32")
    sc = [op for op in g.ops if op.kind == "scatter"]
    assert len(sc) == 1
    rows = sketch_rows(n, k, s, 0).tolist()
    assert sc[0].updates == n * s * d
    assert sc[0].distinct_targets == len(set(rows)) * d
    assert sc[0].distinct_targets < sc[0].updates
    assert g.meta["sketch"] == {"n": n, "d": d, "k": k, "s": s, "seed": 0}


def test_sparsestack_rows_are_distinct_per_column():
    n, k, s = 100, 64, 4
    rows = sketch_rows(n, k, s, 3).view(s, n)
    for col in range(n):
        assert len(set(rows[:, col].tolist())) == s


def test_user_callable(tmp_path, monkeypatch):
    (tmp_path / "my_wl.py").write_text(textwrap.dedent("""
        import torch
        def make():
            with torch.device("meta"):
                m = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU())
            return m, (torch.empty(4, 16, device="meta"),)
        def bad():
            return 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    g = build("my_wl:make")
    kinds = [op.kind for op in g.ops if op.kind != "view"]
    assert kinds == ["matmul", "elementwise"]
    assert g.ops[[o.kind for o in g.ops].index("matmul")].module == "0"
    from workloads import WorkloadError
    with pytest.raises(WorkloadError):
        build("my_wl:bad")


def test_user_model_that_cannot_run_on_meta_is_one_line_error(tmp_path, monkeypatch):
    (tmp_path / "bad_wl.py").write_text(
        "import torch\n"
        "class M(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x * float(x.sum().item())\n"
        "def make():\n"
        "    return M(), (torch.empty(4, device='meta'),)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from workloads import WorkloadError
    with pytest.raises(WorkloadError, match="could not trace bad_wl:make"):
        build("bad_wl:make")
