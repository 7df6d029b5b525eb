"""Property tests: random bytes and random YAML/JSON trees fed to every file roofsim reads.

Whatever the file holds, the command ends in the one-line ``roofsim: error: ...`` and exit
2: never a traceback, never exit 0. Keys are drawn partly from the names the loaders look
for, so the trees get past the first checks and into the deeper ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roofsim.cli import main

DATASET = Path(__file__).resolve().parents[2] / "validation" / "data" / "cpu-vm-20261129"

SPEC_KEYS = ["id", "name", "base", "host", "device", "memory", "tiers", "attach", "host_link", "num_devices",
             "interconnect", "value", "source", "points", "kind", "capacity", "bandwidth", "latency", "link",
             "compute_units", "matrix", "vector", "bf16", "peak", "efficiency", "h100-sxm", "x86-server",
             "cxl-expander-x8", "kernel_latency", "pim", "dispatch_overhead"]
CONFIG_KEYS = ["model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
               "intermediate_size", "max_position_embeddings", "num_key_value_heads", "llama", "gpt2", "n_embd",
               "n_layer", "n_head", "head_dim", "vit", "image_size", "num_channels"]
CSV_KEYS = ["traceEvents", "ph", "X", "name", "dur", "ts", "cat", "kernel", "cpu_op", "args"]

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))


def trees(keys: list[str]):
    key = st.one_of(st.sampled_from(keys), st.text(max_size=6))
    return st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(key, inner, max_size=5)), max_leaves=20)


def top_mapping(keys: list[str]):
    key = st.one_of(st.sampled_from(keys), st.text(max_size=6))
    return st.dictionaries(key, trees(keys), max_size=6)


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _expect_clean_error(capsys, argv: list[str]) -> None:
    capsys.readouterr()
    rc = main(argv)  # an uncaught exception fails the test with its traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, (argv, err)
    assert len(err) == 1 and err[0].startswith("roofsim: error:"), err


def _dump(tree) -> str:
    return yaml.safe_dump(tree, allow_unicode=True)


# -- hardware specs (YAML) ---------------------------------------------------------------------

@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes_as_hardware_yaml(tmp_path, capsys, data):
    f = tmp_path / "hw.yaml"
    f.write_bytes(data)
    rc = main(["hardware", "show", str(f)])
    out, err = capsys.readouterr()
    # a few byte strings are valid YAML scalars/mappings; none is a valid system
    assert rc == 2 and len(err.strip().splitlines()) == 1, err


@SETTINGS
@given(tree=st.one_of(top_mapping(SPEC_KEYS), trees(SPEC_KEYS)))
def test_random_yaml_tree_as_hardware(tmp_path, capsys, tree):
    f = tmp_path / "hw.yaml"
    f.write_text(_dump(tree))
    _expect_clean_error(capsys, ["hardware", "show", str(f)])


@SETTINGS
@given(tree=top_mapping(SPEC_KEYS))
def test_random_yaml_tree_derived_from_a_catalog_system(tmp_path, capsys, tree):
    """``base: h100-sxm`` plus random overrides: the merge and the validators see them all."""
    f = tmp_path / "hw.yaml"
    f.write_text(_dump({**tree, "base": "h100-sxm"}))
    capsys.readouterr()
    rc = main(["hardware", "show", str(f), "--format", "json"])
    err = capsys.readouterr().err.strip().splitlines()
    # an override may be harmless (a new name): then it loads; otherwise one line, exit 2
    assert rc in (0, 2)
    if rc == 2:
        assert len(err) == 1 and err[0].startswith("roofsim: error:"), err


# -- model configs (JSON) ----------------------------------------------------------------------

@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes_as_config_json(tmp_path, capsys, data):
    f = tmp_path / "config.json"
    f.write_bytes(data)
    _expect_clean_error(capsys, ["trace", str(f)])


@SETTINGS
@given(tree=st.one_of(top_mapping(CONFIG_KEYS), trees(CONFIG_KEYS)))
def test_random_json_tree_as_config(tmp_path, capsys, tree):
    f = tmp_path / "config.json"
    f.write_text(json.dumps(tree))
    _expect_clean_error(capsys, ["trace", str(f)])


# -- measurement datasets ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("ds")
    for name in ("measurements.csv", "meta.json", "hardware.yaml", "fit.json"):
        shutil.copy(DATASET / name, d / name)
    return d


@SETTINGS
@given(data=st.binary(max_size=400))
def test_random_bytes_as_measurements_csv(tmp_path, capsys, data):
    d = tmp_path / "ds"
    d.mkdir(exist_ok=True)
    (d / "measurements.csv").write_bytes(data)
    _expect_clean_error(capsys, ["validate", "--measurements", str(d)])


@SETTINGS
@given(name=st.sampled_from(["meta.json", "fit.json", "hardware.yaml"]),
       data=st.one_of(st.binary(max_size=300), top_mapping(SPEC_KEYS).map(lambda t: json.dumps(t).encode())))
def test_random_bytes_beside_good_measurements(dataset, tmp_path, capsys, name, data):
    d = tmp_path / "ds"
    shutil.copytree(dataset, d, dirs_exist_ok=True)
    (d / name).write_bytes(data)
    capsys.readouterr()
    rc = main(["validate", "--measurements", str(d), "--format", "json"])
    err = capsys.readouterr().err.strip().splitlines()
    # meta.json and fit.json are descriptive: a dataset may validate without them being usable,
    # but a broken one is never a traceback
    assert rc in (0, 2), err
    if rc == 2:
        assert len(err) == 1 and err[0].startswith("roofsim: error:"), err


# -- profiler traces ---------------------------------------------------------------------------

@SETTINGS
@given(data=st.one_of(st.binary(max_size=300),
                      st.one_of(top_mapping(CSV_KEYS), trees(CSV_KEYS)).map(lambda t: json.dumps(t).encode())))
def test_random_profile_trace(tmp_path, capsys, data):
    f = tmp_path / "trace.json"
    f.write_bytes(data)
    _expect_clean_error(capsys, ["validate", "--profile", str(f), "--model", "gpt2", "--hardware", "h100-sxm",
                                 "--context", "16"])


@pytest.mark.parametrize("tree", [{"tiers": True}, {"attach": False}, {"tiers": 3}, {"attach": "cxl"}])
def test_list_fields_that_are_not_lists_are_one_line_errors(tmp_path, capsys, tree):
    """Found by the property test above: a scalar where the spec wants a list."""
    import yaml

    from roofsim.cli import main

    p = tmp_path / "hw.yaml"
    p.write_text(yaml.safe_dump({"base": "h100-sxm", **tree}))
    capsys.readouterr()
    assert main(["hardware", "show", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("roofsim: error:") and ("tiers" in err[0] or "attach" in err[0])
