"""The on-disk graph cache: traced graphs and parametric families, keyed by everything
that decides them.

Where: ``$ROOFSIM_CACHE`` if set, else the user cache folder (``platformdirs``:
``~/.cache/roofsim`` on Linux). ``roofsim cache info`` shows it, ``roofsim cache clear``
empties it.

Key (``key(...)``): what was asked (model and a hash of its configuration, phase,
batch, context, prompt, dtype, step options, fusion policy, tensor-parallel degree)
and what the answer was computed with (roofsim's version, a hash of the ``workloads``
sources, which holds the cost rules, tracer, fusion and sharding code, and the torch
and transformers versions). Any change to those is a different file.

An entry is one gzip file of JSON ``{"format", "key", "body"}``. Nothing read is
trusted: a file that does not decompress (gzip checks a CRC), parse, carry this format
and exactly the key asked for, or whose body the caller cannot decode, is ignored,
and the rebuilt entry replaces it. Writes go to a temporary file in the same folder,
renamed over the entry when complete, so a reader sees a whole entry or none, and
concurrent writers each rename a whole file. A lock per entry (``filelock``) makes a
second process building the same graph wait for the first and read its entry instead
of tracing again. A cache folder that cannot be written is not an error: answers are
computed and not kept.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

#: entry layout version (bump when the envelope or a body format changes)
FORMAT = 1
MAGIC = "roofsim-graph-cache"
ENV = "ROOFSIM_CACHE"
SUBDIR = "graphs"
#: seconds a builder waits for another process building the same entry
LOCK_WAIT_S = 300.0

T = TypeVar("T")


def cache_dir() -> Path:
    """The cache folder (not created here)."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("roofsim", appauthor=False))


def source_hash(*folders: Path) -> str:
    """SHA-256 of the ``*.py`` and ``*.yaml`` files directly in ``folders``, names included."""
    h = hashlib.sha256()
    for folder in folders:
        for p in sorted(folder.glob("*.py")) + sorted(folder.glob("*.yaml")):
            h.update(f"{folder.name}/{p.name}".encode())
            h.update(b"\0")
            h.update(p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """SHA-256 of every source file of the ``workloads`` package (cost rules, tracer, zoo
    configs, fusion, sharding, parametric families): any edit gives new keys."""
    return source_hash(Path(__file__).parent)


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """roofsim, torch and transformers versions, read from package metadata (no import)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("roofsim", "torch", "transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "none"
    return out


def key(kind: str, **fields: Any) -> dict[str, Any]:
    """The full key of an entry of ``kind`` (``graph`` or ``family``) for ``fields``."""
    return {"kind": kind, "format": FORMAT, "code": code_hash(), **versions(), **fields}


def _name(k: dict[str, Any]) -> str:
    text = json.dumps(k, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def entry_path(k: dict[str, Any]) -> Path:
    return cache_dir() / SUBDIR / f"{k['kind']}-{_name(k)}.json.gz"


def _canon(k: dict[str, Any]) -> Any:
    return json.loads(json.dumps(k, sort_keys=True, default=str))


def load(k: dict[str, Any], decode: Callable[[Any], T]) -> T | None:
    """The decoded body of entry ``k``, or None if it is missing, corrupt or foreign."""
    p = entry_path(k)
    try:
        raw = p.read_bytes()
    except OSError:
        return None
    try:
        doc = json.loads(gzip.decompress(raw).decode("utf-8"))
        if not (isinstance(doc, dict) and doc.get("magic") == MAGIC and doc.get("format") == FORMAT):
            return None
        if doc.get("key") != _canon(k):
            return None  # another key hashed to this name, or a hand-made file: not ours
        return decode(doc["body"])
    except Exception:  # noqa: BLE001 - anything wrong with a cache file means "rebuild it"
        return None


def store(k: dict[str, Any], body: Any) -> bool:
    """Write entry ``k`` atomically; False (and nothing written) if the folder is not writable."""
    p = entry_path(k)
    doc = {"magic": MAGIC, "format": FORMAT, "key": _canon(k), "body": body}
    data = gzip.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), compresslevel=3, mtime=0)
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; entries are ordinary files
        os.replace(tmp, p)
        tmp = None
        return True
    except OSError:
        return False
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def building(k: dict[str, Any]):
    """Hold the entry's lock while it is built (waits for another builder; on any
    trouble with the lock, builds without it)."""
    p = entry_path(k)
    lock = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock

        lock = FileLock(str(p) + ".lock", timeout=LOCK_WAIT_S)
        lock.acquire()
    except Exception:  # noqa: BLE001 - a cache we cannot lock is a cache we do without
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            with contextlib.suppress(Exception):
                lock.release()


def get_or_build(k: dict[str, Any], decode: Callable[[Any], T], make: Callable[[], tuple[T, Any]]) -> T:
    """The entry's value: from the cache, else ``make()`` -> (value, body to store)."""
    got = load(k, decode)
    if got is not None:
        return got
    with building(k):
        got = load(k, decode)  # another process may have built it while we waited
        if got is not None:
            return got
        value, body = make()
        store(k, body)
        return value


def entries() -> list[Path]:
    d = cache_dir() / SUBDIR
    try:
        return sorted(p for p in d.iterdir() if p.name.endswith(".json.gz"))
    except OSError:
        return []


def info() -> dict[str, Any]:
    """Folder, entry counts by kind, and bytes used."""
    d = cache_dir()
    files = entries()
    kinds: dict[str, int] = {}
    size = 0
    for p in files:
        kinds[p.name.split("-", 1)[0]] = kinds.get(p.name.split("-", 1)[0], 0) + 1
        with contextlib.suppress(OSError):
            size += p.stat().st_size
    return {"dir": str(d), "from": f"${ENV}" if os.environ.get(ENV) else "user cache folder",
            "entries": len(files), "by_kind": kinds, "bytes": size}


def clear() -> int:
    """Remove every entry (and stale temporary and lock files); returns entries removed."""
    d = cache_dir() / SUBDIR
    n = 0
    try:
        items = list(d.iterdir())
    except OSError:
        return 0
    for p in items:
        if p.name.endswith((".json.gz", ".tmp", ".lock")):
            with contextlib.suppress(OSError):
                p.unlink()
                n += p.name.endswith(".json.gz")
    return n
