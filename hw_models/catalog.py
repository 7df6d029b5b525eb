"""The built-in hardware catalog and YAML loading.

Layout: ``catalog/systems/<id>.yaml`` (whole machines), ``catalog/hosts/<id>.yaml``
(host CPUs a system names with ``host: <id>``) and ``catalog/tiers/<id>.yaml`` (memory
tiers such as a CXL expander that a system adds with ``attach: [<id>, ...]``).
A system with ``host_link`` gets a ``host`` tier: the host's DRAM reached over that link.

What-if files: a system document may start from another with ``base: <system id>``
(or a path to a YAML file, relative to the including file). The named system's
document is deep-merged *under* this one: mappings merge key by key; any other value
(strings, lists such as ``tiers`` or ``memory``) is replaced whole, and so is a number
mapping (``{value, source}`` or an efficiency curve), so a new value never inherits the
old source; ``attach`` lists are appended to the base's; ``null`` removes a key (e.g.
``interconnect: null``). A ``host`` mapping merges over the base's host even when the
base names it by catalog id. Without its own ``id`` a derived file takes its file name.
For example, a slower-host H100::

    base: h100-sxm
    name: H100 with a slow host
    host: {dispatch_overhead: {value: 25 us, source: "what-if"}}
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .spec import HostSpec, LinkSpec, SystemSpec, TierSpec

CATALOG = Path(__file__).parent / "catalog"


class SpecError(ValueError):
    """A hardware id or spec file that cannot be used; the message says why in one line."""

    user_facing = True


def _ids(sub: str) -> list[str]:
    return sorted(p.stem for p in (CATALOG / sub).glob("*.yaml"))


def list_systems() -> list[str]:
    return _ids("systems")


def list_hosts() -> list[str]:
    return _ids("hosts")


def list_tiers() -> list[str]:
    return _ids("tiers")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text (byte {e.start}); a hardware spec is a UTF-8 YAML file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SpecError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', e)})") from None
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror}") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: expected a YAML mapping at the top level")
    return doc


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _exists(path: Path) -> bool:
    """``path.exists()`` that answers False for names the OS refuses (too long, NUL bytes)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _component(sub: str, ref: Any, what: str) -> dict[str, Any]:
    if isinstance(ref, dict):
        return ref
    if not isinstance(ref, str) or ref not in _ids(sub):
        raise SpecError(f"unknown {what} {_short(ref)}; known: {', '.join(_ids(sub))} (or an inline mapping)")
    path = CATALOG / sub / f"{ref}.yaml"
    doc = _read_yaml(path)
    doc.pop("kind_of_file", None)
    return doc


def _explain(e: ValidationError, path: Path | str, prefix: str = "") -> SpecError:
    err = e.errors()[0]
    loc = ".".join([prefix] * bool(prefix) + [str(x) for x in err["loc"]]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    return SpecError(f"{path}: {loc}: {msg}")


def _is_number(doc: dict[str, Any]) -> bool:
    # a quantity or an efficiency curve is replaced whole, so a new value never keeps the old source
    return "value" in doc or "points" in doc


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, val in over.items():
        if val is None:
            out.pop(key, None)
        elif key == "attach":
            if not isinstance(val, list):
                raise SpecError(f"attach: expected a list of tier ids, got {val!r}")
            out[key] = list(out.get(key) or []) + list(val)
        elif key == "host" and isinstance(val, dict) and isinstance(out.get(key), str):
            out[key] = _merge(_component("hosts", out[key], "host"), val)
        elif isinstance(val, dict) and isinstance(out.get(key), dict) and not _is_number(val):
            out[key] = _merge(out[key], val)
        else:
            out[key] = val
    return out


def _base_path(ref: str, origin: Path | str) -> Path:
    if ref.endswith((".yaml", ".yml")):
        path = Path(ref)
        if not path.is_absolute() and isinstance(origin, Path):
            near = origin.parent / path
            # catalog files carry an origin relative to the package, not to the cwd
            in_catalog = not origin.is_absolute() and not origin.exists() and (CATALOG.parent / origin).exists()
            path = CATALOG.parent / near if in_catalog else near
        return path
    if ref not in list_systems():
        raise SpecError(f"{origin}: base: unknown system {_short(ref)}; known: {', '.join(list_systems())}")
    return CATALOG / "systems" / f"{ref}.yaml"


def expand_base(doc: dict[str, Any], origin: Path | str = "<spec>", _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """``doc`` with its ``base:`` chain merged in (see the module docstring); no validation."""
    if "base" not in doc:
        return dict(doc)
    doc = dict(doc)
    ref = doc.pop("base")
    if not isinstance(ref, str) or not ref:
        raise SpecError(f"{origin}: base: expected a system id or a YAML path, got {ref!r}")
    path = _base_path(ref, origin)
    key = str(path.resolve())
    if key in _seen:
        raise SpecError(f"{origin}: base: {ref!r} includes itself (a cycle of base: keys)")
    if not _exists(path):
        raise SpecError(f"{origin}: base: file {str(path)!r} does not exist")
    parent = expand_base(_read_yaml(path), path, (*_seen, key))
    if "id" not in doc and isinstance(origin, Path):
        doc["id"] = origin.stem
    return _merge(parent, doc)


def resolve(doc: dict[str, Any], origin: Path | str = "<spec>") -> SystemSpec:
    """Build a ``SystemSpec`` from a system document, resolving ``base``, host and tier references."""
    if not isinstance(doc, dict):
        raise SpecError(f"{origin}: expected a YAML mapping at the top level")
    doc = expand_base(doc, origin)
    try:
        host = _component("hosts", doc.get("host"), "host") if "host" in doc else None
    except SpecError as e:
        raise SpecError(f"{origin}: host: {e}") from None
    if host is None:
        raise SpecError(f"{origin}: host: missing (a catalog host id such as {list_hosts()[:1]} or a mapping)")
    doc["host"] = host
    tiers = doc.get("tiers") or []
    if not isinstance(tiers, list):
        raise SpecError(f"{origin}: tiers: expected a list of tier mappings, got {tiers!r}")
    tiers = list(tiers)
    link = doc.pop("host_link", None)
    if link is not None:
        try:
            h = HostSpec.model_validate(host)
        except ValidationError as e:
            raise _explain(e, origin, "host") from None
        try:
            link = LinkSpec.model_validate(link)
        except ValidationError as e:
            raise _explain(e, origin, "host_link") from None
        tiers.insert(
            0,
            {
                "name": "host",
                "kind": "host",
                "capacity": h.memory_capacity,
                "bandwidth": h.memory_bandwidth,
                "latency": h.memory_latency,
                "link": link,
            },
        )
    attach = doc.pop("attach", None) or []
    if not isinstance(attach, list):
        raise SpecError(f"{origin}: attach: expected a list of tier ids, got {attach!r}")
    for ref in attach:
        try:
            # validated objects, not dumps: a dump holds bare SI floats, which Quantity rejects
            tiers.append(TierSpec.model_validate(_component("tiers", ref, "tier")))
        except SpecError as e:
            raise SpecError(f"{origin}: attach: {e}") from None
        except ValidationError as e:
            raise _explain(e, origin, f"attach[{ref if isinstance(ref, str) else '<inline>'}]") from None
    doc["tiers"] = tiers
    try:
        return SystemSpec.model_validate(doc)
    except ValidationError as e:
        raise _explain(e, origin) from None


@lru_cache(maxsize=64)
def _load_cached(key: str, stamp: tuple[int, int] | None = None) -> SystemSpec:
    # ``stamp`` (mtime, size) of a file: a file rewritten since it was cached is read again
    if not key.strip():
        raise SpecError(f"hardware is empty; give a catalog id ({', '.join(list_systems())}) or a YAML path")
    path = Path(key)
    if path.suffix in (".yaml", ".yml") or _exists(path):
        if not _exists(path):
            raise SpecError(f"hardware file {key!r} does not exist")
        return resolve(_read_yaml(path), path)
    cat = CATALOG / "systems" / f"{key}.yaml"
    if key not in list_systems():
        raise SpecError(f"unknown hardware {key!r}; known: {', '.join(list_systems())} (or a path to a YAML file)")
    return resolve(_read_yaml(cat), cat.relative_to(CATALOG.parent))


def load(hardware: str | SystemSpec) -> SystemSpec:
    """A catalog id (``h100-sxm``) or a path to a YAML file -> a validated ``SystemSpec``.

    Returns a fresh copy, so callers may change it (what-if studies) without touching the cache.
    """
    if isinstance(hardware, SystemSpec):
        return hardware
    key = str(hardware)
    try:
        st = Path(key).stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except (OSError, ValueError):  # names the OS refuses (too long, NUL bytes)
        stamp = None
    return _load_cached(key, stamp).model_copy(deep=True)


def load_host(ref: str) -> HostSpec:
    """A catalog host component (``catalog/hosts/<id>.yaml``) on its own."""
    try:
        return HostSpec.model_validate(_component("hosts", ref, "host"))
    except ValidationError as e:
        raise _explain(e, f"hosts/{ref}.yaml") from None


def load_tier(ref: str) -> TierSpec:
    """A catalog tier component (``catalog/tiers/<id>.yaml``) on its own."""
    try:
        return TierSpec.model_validate(_component("tiers", ref, "tier"))
    except ValidationError as e:
        raise _explain(e, f"tiers/{ref}.yaml") from None
