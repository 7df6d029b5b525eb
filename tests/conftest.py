"""Session-wide test setup: the graph cache lives in a fresh temporary folder.

``ROOFSIM_CACHE`` is set before any test module is imported (``pytest_configure``), so
no test reads or writes the user's ``~/.cache/roofsim``; subprocesses inherit it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_DIR: str | None = None


def pytest_configure(config) -> None:
    global _DIR
    _DIR = tempfile.mkdtemp(prefix="roofsim-test-cache-")
    os.environ["ROOFSIM_CACHE"] = _DIR


def pytest_unconfigure(config) -> None:
    if _DIR:
        shutil.rmtree(_DIR, ignore_errors=True)
