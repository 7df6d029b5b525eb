"""``roofsim trace`` and ``roofsim models list``: output, saved graphs, one-line errors."""

from __future__ import annotations

import json

import pytest

from roofsim.cli import main
from workloads import WorkloadGraph


def test_trace_table_and_saved_graph(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["trace", "gpt2", "--context", "64", "--batch", "2", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kernels" in text and "kv_cache bytes" in text and "unknown ops: none" in text
    g = WorkloadGraph.from_json(out)
    assert g.meta["model"] == "gpt2" and g.meta["batch"] == 2 and g.meta["context"] == 64
    assert sum(1 for op in g.ops if op.kind == "attention") == 12


def test_trace_json(capsys):
    assert main(["trace", "qwen2.5-0.5b", "--phase", "prefill", "--prompt", "16", "--format", "json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["phase"] == "prefill" and s["ops"] > 0 and s["bytes_by_role"]["weight"] > 0
    assert s["unknown_ops"] == {}


def test_models_list(capsys):
    assert main(["models", "list"]) == 0
    text = capsys.readouterr().out
    for mid in ("llama-3.1-70b", "mixtral-8x7b", "countsketch", "Qwen/Qwen2.5-7B"):
        assert mid in text


@pytest.mark.parametrize("argv", [
    ["trace", "no-such-model"],
    ["trace", "gpt2", "--batch", "0"],
    ["trace", "gpt2", "--context", "-1"],
    ["trace", "gpt2", "--context", "100000"],
    ["trace", "gpt2", "--dtype", "int3"],
    ["trace", "resnet-50", "--dtype", "int4"],
    ["trace", "gpt2", "--phase", "train"],
])
def test_errors_exit_2_one_line(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse rejects a bad choice itself, also with status 2
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_existing_output_kept_on_error(tmp_path, capsys):
    out = tmp_path / "g.json"
    out.write_text("keep")
    assert main(["trace", "gpt2", "--dtype", "int3", "-o", str(out)]) == 2
    assert out.read_text() == "keep"


def test_trace_user_callable_lists_unknown_ops(tmp_path, monkeypatch, capsys):
    (tmp_path / "cli_wl.py").write_text(
        "import torch\n"
        "class M(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.sort(x).values + 1\n"
        "def make():\n"
        "    return M(), (torch.empty(8, 8, device='meta'),)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["trace", "cli_wl:make"]) == 0
    text = capsys.readouterr().out
    assert "unknown ops (no cost rule" in text and "aten.sort" in text
