"""Concurrent and interrupted runs: one writer per output, whole folders, whole rows.

* two ``roofsim report`` writers on one ``--out`` never produce a mixed folder: the
  second fails fast, or (if the first is done) replaces the folder whole;
* an interrupted report (Ctrl-C, an error) keeps the previous report untouched;
* a measurement store has one writer; a writer killed at a random moment (SIGKILL, so
  possibly mid-row) leaves a store that the next run repairs and completes;
* Ctrl-C during ``calibrate`` or ``report`` is one line and exit 130.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from filelock import FileLock

from roofsim.cli import main
from validation.harness import Store, cases, read_csv, run

ROOT = Path(__file__).resolve().parents[2]
REPORT = ["report", "gpt2", "--context", "64", "--frontier-batch", "none"]


def _tree(d: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``d``."""
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.") and not p.name.endswith(".lock"))


def _runs(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.is_dir()}


@pytest.fixture(scope="module")
def h100_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rep") / "out"
    assert main([*REPORT, "--hardware", "h100-sxm", "--out", str(out)]) == 0
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# -- report: one writer, whole folders ---------------------------------------------------------

def test_a_second_report_writer_fails_fast_and_changes_nothing(h100_report, tmp_path, capsys):
    out = _copy(h100_report, tmp_path / "out")
    before = _tree(out)
    holder = FileLock(str(tmp_path / ".out.lock"))  # another process's writer, as the OS sees it
    with holder:
        t0 = time.perf_counter()
        rc = main([*REPORT, "--hardware", "l4", "--out", str(out)])
        waited = time.perf_counter() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "being written by another roofsim process" in err[0], err
    assert waited < 5.0  # fails at once, before tracing anything
    assert _tree(out) == before


def test_a_new_report_replaces_the_old_one_whole(h100_report, tmp_path):
    out = _copy(h100_report, tmp_path / "out")
    assert _runs(out) == {"h100-sxm-decode"}
    assert main([*REPORT, "--hardware", "l4", "--out", str(out)]) == 0
    # no stale h100 run beside the new l4 one, and the tables agree with the folders
    assert _runs(out) == {"l4-decode"}
    assert set(pd.read_csv(out / "comparison.csv")["hardware"]) == {"l4"}
    assert "h100" not in (out / "report.html").read_text()
    assert _leftovers(out) == []


def test_an_interrupted_report_keeps_the_previous_one(h100_report, tmp_path, capsys, monkeypatch):
    import roofsim.reporting

    out = _copy(h100_report, tmp_path / "out")
    before = _tree(out)

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(roofsim.reporting, "comparison", ctrl_c)  # half the run's files are written by then
    rc = main([*REPORT, "--hardware", "l4", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and err == [f"roofsim: interrupted; nothing written to {out} (a previous report there is kept)"]
    assert _tree(out) == before
    assert _leftovers(out) == []


def test_a_failing_report_keeps_the_previous_one(h100_report, tmp_path, capsys):
    out = _copy(h100_report, tmp_path / "out")
    before = _tree(out)
    bad = tmp_path / "measured"
    bad.mkdir()
    (bad / "measurements.csv").write_text("a,b\n1,2\n")  # refused inside the run, after the folder was staged
    rc = main([*REPORT, "--hardware", "h100-sxm", "--measurements", str(bad), "--out", str(out)])
    assert rc == 2 and "not a roofsim measurements file" in capsys.readouterr().err
    assert _tree(out) == before and _leftovers(out) == []


def test_report_never_replaces_a_folder_of_the_users_files(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work\n")
    rc = main([*REPORT, "--hardware", "h100-sxm", "--out", str(out)])
    assert rc == 2 and "holds files roofsim did not write" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "years of work\n"


def test_two_report_processes_on_one_folder_never_mix(tmp_path):
    """Two real processes race for one --out: each ends either complete (0) or refused at
    once (2, one line); the folder holds exactly one complete run's files."""
    out = tmp_path / "race"
    procs = {hw: subprocess.Popen([sys.executable, "-m", "roofsim", *REPORT, "--hardware", hw, "--out", str(out)],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for hw in ("h100-sxm", "l4")}
    done = {hw: (p.wait(timeout=240), p.stderr.read()) for hw, p in procs.items()}
    for hw, (rc, err) in done.items():
        assert "Traceback" not in err, err
        assert rc in (0, 2), (hw, err)
        if rc == 2:
            assert "being written by another roofsim process" in err, err
    winners = [hw for hw, (rc, _) in done.items() if rc == 0]
    assert winners
    # the folder is one run's, whole: the last to finish
    runs = _runs(out)
    assert len(runs) == 1
    hw = runs.pop().removesuffix("-decode")
    assert hw in winners
    assert set(pd.read_csv(out / "comparison.csv")["hardware"]) == {hw}
    ops = pd.read_csv(out / f"{hw}-decode" / "ops.csv")
    assert len(ops) == ops["id"].nunique()  # no interleaved rows
    assert _leftovers(out) == []


# -- measurement stores: one writer, whole rows -------------------------------------------------

def test_a_second_store_writer_fails_fast(tmp_path, capsys):
    d = tmp_path / "store"
    d.mkdir()
    with FileLock(str(d / ".roofsim.lock")):  # a writer in another process holds the store
        rc = main(["calibrate", "--device", "cpu", "--tiny", "--threads", "1", "--out", str(d)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "being written by another roofsim process" in err[0], err
    assert not (d / "measurements.csv").exists()


def _harness(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "validation.harness", "--device", "cpu", "--tiny", "--threads", "1",
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _rows_on_disk(csv: Path) -> int:
    return csv.read_bytes().count(b"\n") - 1 if csv.exists() else 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_writer_killed_at_a_random_moment_leaves_a_store_that_resumes(tmp_path, capsys, seed):
    d = tmp_path / "store"
    proc = _harness(d)
    deadline = time.time() + 120
    while _rows_on_disk(d / "measurements.csv") < 1 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(random.Random(seed).uniform(0.0, 0.4))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # a kill can land mid-row: make sure this test always sees a cut-off tail, as after such a kill
    with open(d / "measurements.csv", "ab") as f:
        f.write(b"dispatch/add/fp32/n8,dispatch,elementwise,add,\"{\"\"n")
    capsys.readouterr()
    run("cpu", d, mode="tiny", threads=1)
    assert "dropped a cut-off last row" in capsys.readouterr().err
    assert (d / "measurements.csv").read_bytes().endswith(b"\r\n")
    df = read_csv(d, warn=None)  # strict: every line one whole row of the header's width
    want = [c.id for c in cases("tiny", "cpu")]
    assert sorted(df["case_id"]) == sorted(want)  # every case once: none lost, none twice
    assert df["case_id"].is_unique and len(df) == len(want)
    with open(d / "measurements.csv", newline="") as f:
        assert sum(1 for _ in f) == len(want) + 1  # one line per row, plus the header


def test_resume_appends_after_a_torn_tail_instead_of_gluing(tmp_path, capsys):
    """The bug as reported: a cut-off last line was counted as done and the next row glued on."""
    d = tmp_path / "store"
    sub = cases("tiny", "cpu")[:3]
    run("cpu", d, mode="tiny", case_list=sub[:2], threads=1)
    full = (d / "measurements.csv").read_bytes()
    last = full.rstrip(b"\r\n").rsplit(b"\r\n", 1)[1]
    (d / "measurements.csv").write_bytes(full[: len(full) - len(last) - 2] + last[:30])  # row 2 cut mid-write
    assert read_csv(d, warn=None)["case_id"].tolist() == [sub[0].id]
    run("cpu", d, mode="tiny", case_list=sub, threads=1)
    assert read_csv(d, warn=None)["case_id"].tolist() == [c.id for c in sub]
    assert Store(d).repair() is None


# -- Ctrl-C ------------------------------------------------------------------------------------

def _wait_for(cond, proc, timeout=180.0) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def test_ctrl_c_during_calibrate_keeps_rows_and_says_how_many(tmp_path):
    d = tmp_path / "cal"
    proc = subprocess.Popen([sys.executable, "-m", "roofsim", "calibrate", "--device", "cpu", "--tiny", "--threads", "1",
                             "--out", str(d), "--format", "json"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _rows_on_disk(d / "measurements.csv") >= 2, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    kept = len(read_csv(d, warn=None))
    assert err.strip().splitlines()[-1] == (f"roofsim: interrupted; {kept} rows kept in {d} "
                                            "(run the same command again to resume)")
    assert 2 <= kept < len(cases("tiny", "cpu"))


def test_ctrl_c_during_report_writes_nothing(tmp_path):
    out = tmp_path / "rep"
    proc = subprocess.Popen([sys.executable, "-m", "roofsim", *REPORT, "--hardware", "h100-sxm,l4", "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: any(p.name.startswith(".rep.tmp-") for p in tmp_path.iterdir()), proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"roofsim: interrupted; nothing written to {out} (a previous report there is kept)"
    assert not out.exists() and _leftovers(out) == []



def test_an_interrupt_inside_exec_code_still_exits_130(tmp_path):
    # Ctrl-C landing in exec()'d code (a dataclass's generated methods while a module
    # imports) is handled like any other, and `python -m` must not turn it into a signal death
    (tmp_path / "ki_probe.py").write_text(
        "from roofsim.cli import EXIT_INTERRUPTED, _forget_unhandled_interrupt\n"
        "try:\n    exec('raise KeyboardInterrupt')\n"
        "except KeyboardInterrupt:\n    _forget_unhandled_interrupt()\n"
        "raise SystemExit(EXIT_INTERRUPTED)\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    proc = subprocess.run([sys.executable, "-m", "ki_probe"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 130, proc.stderr
