"""Where commands write: checked before any work, written whole or not at all, one writer
at a time.

* ``check_file`` / ``check_dir``: an ``--out`` that cannot be written (a directory given
  for a file, a file given for a folder, a missing or read-only parent, anything under
  ``/proc``, ``/sys`` or ``/dev``) is a one-line ``UserError`` before the command traces
  or simulates anything.
* ``atomic_file``: the command writes a temporary sibling and renames it over the target
  when it is complete, so an interrupted or failed run leaves the previous file as it was
  and a reader never sees half a file.
* ``locked``: one writer per output, held with ``filelock`` (an OS lock the kernel drops
  when the holder dies, so a killed writer never leaves a stale lock); a second writer
  fails at once with a clear message instead of interleaving rows.
* ``staged_dir``: a whole output folder (``roofsim report``) is written into a temporary
  sibling and renamed into place, under the lock: a reader sees the old folder or the new
  one, never a mix, and an interrupted run leaves the old one untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from roofsim.errors import UserError

#: kernel file systems: writing there is never what a user meant
PSEUDO_ROOTS = ("/proc", "/sys", "/dev")


def _outside_pseudo_roots(path: str | Path, option: str, instead: str) -> Path:
    """``path`` as a ``Path``; a one-line ``UserError`` (asking for ``instead``) when it is
    under a kernel file system."""
    p = Path(path)
    text = p.resolve().as_posix()
    for root in PSEUDO_ROOTS:
        if text == root or text.startswith(root + "/"):
            raise UserError(f"{option} {path}: under {root}, a kernel file system; give {instead}")
    return p


def _existing_ancestor(path: Path) -> Path:
    p = path.resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_file(path: str | Path, option: str) -> Path:
    """``path`` as a file the command may create or replace; else a one-line ``UserError``."""
    p = _outside_pseudo_roots(path, option, "a path in a normal folder")
    if p.is_dir():
        raise UserError(f"{option} {path}: is a directory; give a file name")
    parent = p.resolve().parent
    if not parent.exists():
        raise UserError(f"{option} {path}: folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise UserError(f"{option} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: folder {parent} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise UserError(f"{option} {path}: file is not writable")
    return p


def check_dir(path: str | Path, option: str) -> Path:
    """``path`` as a folder the command may create or write into; else a one-line ``UserError``."""
    p = _outside_pseudo_roots(path, option, "a normal folder")
    if p.exists() and not p.is_dir():
        raise UserError(f"{option} {path}: is a file, not a folder")
    anc = _existing_ancestor(p)
    if not anc.is_dir():
        raise UserError(f"{option} {path}: {anc} is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: {anc} is not writable")
    return p


def _os_error(option: str, path: str | Path, e: OSError) -> UserError:
    return UserError(f"cannot write {option} {path}: {e.strerror or e}")


@contextlib.contextmanager
def atomic_file(path: str | Path, option: str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error, flush it
    to disk and rename it over ``path``. On any error (or Ctrl-C) the temporary file is
    removed and ``path`` keeps what it held."""
    p = check_file(path, option)
    try:
        # the target's suffix last: writers that pick a format by extension (savefig) still do
        fd, tmp_name = tempfile.mkstemp(prefix=f".{p.stem}.", suffix=f".tmp{p.suffix}", dir=p.resolve().parent)
    except OSError as e:
        raise _os_error(option, path, e) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except OSError as e:
        raise _os_error(option, path, e) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: str | Path, text: str, option: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (see ``atomic_file``)."""
    with atomic_file(path, option) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def locked(lock_path: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` or fail at once: ``what`` is in use."""
    lock = FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(f"{what} is being written by another roofsim process (lock {lock_path} is held); "
                        "wait for it to finish or choose another output") from None
    except OSError as e:
        raise UserError(f"cannot lock {what}: {lock_path}: {e.strerror or e}") from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def locked_dir(path: str | Path, option: str) -> Iterator[Path]:
    """``path`` checked, created, and locked (``DIR/.roofsim.lock``) for the block."""
    p = check_dir(path, option)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _os_error(option, path, e) from None
    with locked(p / ".roofsim.lock", f"{option} {path}"):
        yield p


@contextlib.contextmanager
def staged_dir(path: str | Path, option: str, marker: str, also_ours: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; when the block succeeds it becomes
    ``path`` (the previous folder is removed); on any error or Ctrl-C it is deleted and
    ``path`` keeps what it held.

    An existing ``path`` is replaced only if it is empty or was written by this command
    (it holds ``marker``, or one of ``also_ours``): a folder of the user's own files is
    refused, never deleted. The lock ``.<name>.lock`` beside ``path`` keeps a second writer out.
    """
    p = check_dir(path, option)
    out = p.resolve()
    parent = out.parent
    if out == Path.cwd().resolve() or out in Path.cwd().resolve().parents:
        raise UserError(f"{option} {path}: is the current folder or holds it; give a folder below it")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _os_error(option, path, e) from None
    with locked(parent / f".{out.name}.lock", f"{option} {path}"):
        if out.is_dir() and any(out.iterdir()) and not any((out / m).exists() for m in (marker, *also_ours)):
            raise UserError(f"{option} {path}: folder holds files roofsim did not write; "
                            "give a new or empty folder (it would be replaced)")
        for stale in parent.glob(f".{out.name}.tmp-*"):  # left by a killed writer: we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        for stale in parent.glob(f".{out.name}.old-*"):
            # a writer killed between its two renames: its previous folder is the only copy
            if not out.exists() and (stale / "previous").is_dir():
                os.rename(stale / "previous", out)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
            os.chmod(tmp, 0o777 & ~_umask())
        except OSError as e:
            raise _os_error(option, path, e) from None
        try:
            yield tmp
            (tmp / marker).write_text("written by roofsim; this folder is replaced whole by the next run\n")
            if out.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
                os.rename(out, old / "previous")
                try:
                    os.rename(tmp, out)
                except BaseException:
                    os.rename(old / "previous", out)
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, out)
        except OSError as e:
            raise _os_error(option, path, e) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
