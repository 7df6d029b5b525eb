"""The graph cache and parametric families: derived graphs equal full traces, cached
answers never import torch or transformers, corrupt or foreign entries are rebuilt."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from workloads import build, builder, graphcache, parametric
from workloads.fusion import fuse
from workloads.precision import parse
from workloads.zoo import _build

ROOT = Path(__file__).resolve().parents[2]

TINY = {"model_type": "llama", "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 16384, "tie_word_embeddings": False}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("tiny") / "config.json"
    p.write_text(json.dumps(TINY))
    return str(p)


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ROOFSIM_CACHE", str(tmp_path / "cache"))
    builder.clear_memory()
    yield tmp_path / "cache"
    builder.clear_memory()


def _traced(model, phase, b, x, fusion="none"):
    ctx, prompt = (x, 512) if phase == "decode" else (2048, x)
    return fuse(_build(model, phase, b, ctx, prompt, parse("bf16"), frozenset(), {}), fusion), ctx, prompt


def assert_same(derived, traced) -> None:
    """Op by op: names, kinds, FLOPs, bytes of every access, launches, attrs; meta; edges."""
    assert len(derived.ops) == len(traced.ops)
    for a, b in zip(derived.ops, traced.ops, strict=True):
        assert (a.name, a.kind, a.launches, a.module, a.shapes, a.attrs) == (b.name, b.kind, b.launches, b.module,
                                                                            b.shapes, b.attrs)
        assert [(x.tensor, x.bytes, x.role) for x in a.reads] == [(x.tensor, x.bytes, x.role) for x in b.reads]
        assert [(x.tensor, x.bytes, x.role) for x in a.writes] == [(x.tensor, x.bytes, x.role) for x in b.writes]
        assert a.flops.keys() == b.flops.keys()
        for k in a.flops:  # a trace rounds its float products; above 2^53 the last bit may differ
            assert a.flops[k] == pytest.approx(b.flops[k], rel=1e-14, abs=0)
    assert derived.meta == traced.meta and list(derived.meta) == list(traced.meta)
    assert derived.edges() == traced.edges()


@pytest.mark.parametrize("phase,grid", [
    ("decode", [(1, 1), (1, 4096), (5, 333), (64, 16000), (256, 2)]),
    ("prefill", [(1, 2), (3, 77), (16, 1024), (2, 9000)]),
])
@pytest.mark.parametrize("fusion", ["none", "serving"])
def test_derived_graphs_equal_full_traces_tiny(tiny, own_cache, phase, grid, fusion):
    req = builder.llm_request(tiny, phase, "bf16", {})
    assert builder.family(req, fusion) is not None
    for b, x in grid:
        traced, ctx, prompt = _traced(tiny, phase, b, x, fusion)
        assert_same(build(tiny, phase, batch=b, context=ctx, prompt=prompt, fusion=fusion), traced)


@pytest.mark.parametrize("model,phase,grid", [
    ("llama-3.1-8b", "decode", [(1, 2048), (7, 8192), (64, 131071)]),
    ("llama-3.1-8b", "prefill", [(1, 512), (4, 4096)]),
    ("gpt2", "decode", [(2, 1023)]),
    ("gpt2", "prefill", [(3, 1024)]),
])
def test_derived_graphs_equal_full_traces_zoo(own_cache, model, phase, grid):
    for b, x in grid:
        traced, ctx, prompt = _traced(model, phase, b, x)
        assert_same(build(model, phase, batch=b, context=ctx, prompt=prompt), traced)


def test_sharded_family_equals_sharded_trace(tiny, own_cache):
    from workloads.tensor_parallel import shard

    req = builder.llm_request(tiny, "decode", "bf16", {})
    fam = builder.family(req, "none", tp=2)
    assert fam is not None
    traced, ctx, prompt = _traced(tiny, "decode", 6, 700)
    assert_same(fam.graph(6, 700, {"batch": 6, "context": ctx, "prompt": prompt}), shard(traced, 2))


def test_moe_is_not_parametric_and_still_exact(own_cache):
    req = builder.llm_request("mixtral-8x7b", "decode", "bf16", {})
    assert builder.family(req, "none") is None  # expected experts: E(1-(1-k/E)^B) is no polynomial
    traced, ctx, prompt = _traced("mixtral-8x7b", "decode", 3, 100)
    assert_same(build("mixtral-8x7b", "decode", batch=3, context=100), traced)
    assert any(p.name.startswith("graph-") for p in (own_cache / "graphs").iterdir())


def test_outside_the_domain_is_traced(tiny, own_cache):
    for phase, b, x in (("decode", 2, 0), ("prefill", 2, 1)):
        traced, ctx, prompt = _traced(tiny, phase, b, x)
        assert_same(build(tiny, phase, batch=b, context=ctx, prompt=prompt), traced)


def test_step_checks_still_apply_to_derived_graphs(tiny, own_cache):
    from workloads import WorkloadError

    build(tiny, "decode", batch=1, context=10)
    with pytest.raises(WorkloadError, match="allows 16384"):
        build(tiny, "decode", batch=1, context=16384)
    with pytest.raises(WorkloadError, match="batch must be a positive integer"):
        build(tiny, "decode", batch=0, context=10)
    with pytest.raises(WorkloadError, match="unknown LLM option"):
        build(tiny, "decode", batch=1, context=10, foo="bar")


def _python(code: str, env_cache: Path) -> str:
    env = {**os.environ, "ROOFSIM_CACHE": str(env_cache)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_cached_answer_never_imports_torch_or_transformers(tiny, own_cache):
    from roofsim.cli import main

    assert main(["simulate", tiny, "--hardware", "h100-sxm", "--batch", "3", "--context", "100"]) == 0
    code = f"""
import sys
from roofsim.cli import main
from workloads import build
build({tiny!r}, "decode", batch=5, context=999)
build({tiny!r}, "decode", batch=2, context=50, fusion="none")
assert main(["simulate", {tiny!r}, "--hardware", "h100-sxm", "--batch", "7", "--context", "3000"]) == 0
print("IMPORTED", sorted(m for m in ("torch", "transformers") if m in sys.modules))
"""
    out = _python(code, own_cache)
    assert "IMPORTED []" in out


def _entry(cache: Path) -> Path:
    (p,) = [p for p in (cache / "graphs").iterdir() if p.name.endswith(".json.gz")]
    return p


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign_key", "bad_body", "empty"])
def test_corrupt_or_foreign_entry_is_ignored_and_rebuilt(tiny, own_cache, damage):
    good = build(tiny, "decode", batch=2, context=40)
    p = _entry(own_cache)
    raw = p.read_bytes()
    doc = json.loads(gzip.decompress(raw))
    if damage == "garbage":
        p.write_bytes(os.urandom(len(raw)))
    elif damage == "truncated":
        p.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        p.write_bytes(b"")
    elif damage == "foreign_key":
        doc["key"]["model"] = "somebody-else"
        p.write_bytes(gzip.compress(json.dumps(doc).encode()))
    else:
        doc["body"]["family"]["coef"] = doc["body"]["family"]["coef"][:-3]
        p.write_bytes(gzip.compress(json.dumps(doc).encode()))
    builder.clear_memory()
    again = build(tiny, "decode", batch=2, context=40)
    assert_same(again, good)
    builder.clear_memory()
    assert graphcache.load(json.loads(gzip.decompress(_entry(own_cache).read_bytes()))["key"],
                           lambda body: body) is not None  # the rebuilt entry replaced it


def test_concurrent_writers_leave_a_whole_entry(own_cache):
    k = graphcache.key("graph", model="x")
    bodies = [{"n": i, "pad": "y" * 50_000} for i in range(8)]
    seen = []

    def write(b):
        for _ in range(5):
            graphcache.store(k, b)
            got = graphcache.load(k, lambda body: body)
            seen.append(got is None or got in bodies)

    threads = [threading.Thread(target=write, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(seen) and graphcache.load(k, lambda body: body) in bodies
    assert not [p for p in (own_cache / "graphs").iterdir() if p.name.endswith(".tmp")]


def test_cache_info_and_clear(tiny, own_cache, capsys):
    from roofsim.cli import main

    build(tiny, "prefill", batch=1, prompt=16)
    assert main(["cache", "info", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dir"] == str(own_cache) and info["entries"] == 1 and info["by_kind"] == {"family": 1}
    assert main(["cache", "clear"]) == 0
    assert "removed 1 entry" in capsys.readouterr().out
    assert main(["cache", "info"]) == 0
    assert "0 (-)" in capsys.readouterr().out


def test_cache_dir_defaults_to_the_user_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("ROOFSIM_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert graphcache.cache_dir() == tmp_path / "roofsim"


def test_family_key_holds_what_decides_the_graph(tiny):
    req = builder.llm_request(tiny, "decode", "bf16", {})
    k = builder.family_key(req, "serving", 4)
    for field in ("model", "source", "phase", "dtype", "options", "fusion", "tp", "roofsim", "code", "torch",
                  "transformers"):
        assert field in k
    assert k["source"] != builder.family_key(builder.llm_request("gpt2", "decode", "bf16", {}), "serving", 4)["source"]
    assert parametric.MIN_LENGTH == {"decode": 1, "prefill": 2}


def test_library_warnings_stay_off_the_terminal_unless_verbose(tmp_path):
    """A new user's first run traces (transformers warns about its own API); the terminal
    shows roofsim's answer only. ``-v`` shows the library's warnings."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**TINY, "num_hidden_layers": 1}))
    env = {**os.environ, "ROOFSIM_CACHE": str(tmp_path / "c1")}
    argv = ["simulate", str(cfg), "--hardware", "h100-sxm", "--context", "20"]
    quiet = subprocess.run([sys.executable, "-m", "roofsim", *argv], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    import warnings

    from roofsim.cli import library_noise

    for verbose, shown in ((0, 0), (1, 1)):
        with library_noise(verbose), warnings.catch_warnings(record=True) as got:
            warnings.warn("`past_key_values` is deprecated", FutureWarning, stacklevel=1)
        assert len(got) == shown
