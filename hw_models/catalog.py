"""The built-in hardware catalog and YAML loading.

Layout: ``catalog/systems/<id>.yaml`` (whole machines), ``catalog/hosts/<id>.yaml``
(host CPUs a system names with ``host: <id>``) and ``catalog/tiers/<id>.yaml`` (memory
tiers such as a CXL expander that a system adds with ``attach: [<id>, ...]``).
A system with ``host_link`` gets a ``host`` tier: the host's DRAM reached over that link.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .spec import HostSpec, SystemSpec, TierSpec

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
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SpecError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', e)})") from None
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror}") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: expected a YAML mapping at the top level")
    return doc


def _component(sub: str, ref: Any, what: str) -> dict[str, Any]:
    if isinstance(ref, dict):
        return ref
    path = CATALOG / sub / f"{ref}.yaml"
    if not path.exists():
        raise SpecError(f"unknown {what} {ref!r}; known: {', '.join(_ids(sub))}")
    doc = _read_yaml(path)
    doc.pop("kind_of_file", None)
    return doc


def _explain(e: ValidationError, path: Path | str) -> SpecError:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    return SpecError(f"{path}: {loc}: {msg}")


def resolve(doc: dict[str, Any], origin: Path | str = "<spec>") -> SystemSpec:
    """Build a ``SystemSpec`` from a system document, resolving host and tier references."""
    doc = dict(doc)
    host = _component("hosts", doc.get("host"), "host") if "host" in doc else None
    if host is None:
        raise SpecError(f"{origin}: host: missing (a catalog host id such as {list_hosts()[:1]} or a mapping)")
    doc["host"] = host
    tiers = list(doc.get("tiers") or [])
    link = doc.pop("host_link", None)
    try:
        if link is not None:
            h = HostSpec.model_validate(host)
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
        for ref in doc.pop("attach", None) or []:
            tiers.append(TierSpec.model_validate(_component("tiers", ref, "tier")).model_dump())
        doc["tiers"] = tiers
        return SystemSpec.model_validate(doc)
    except ValidationError as e:
        raise _explain(e, origin) from None


@lru_cache(maxsize=64)
def _load_cached(key: str) -> SystemSpec:
    path = Path(key)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise SpecError(f"hardware file {key!r} does not exist")
        return resolve(_read_yaml(path), path)
    cat = CATALOG / "systems" / f"{key}.yaml"
    if not cat.exists():
        raise SpecError(f"unknown hardware {key!r}; known: {', '.join(list_systems())} (or a path to a YAML file)")
    return resolve(_read_yaml(cat), cat.relative_to(CATALOG.parent))


def load(hardware: str | SystemSpec) -> SystemSpec:
    """A catalog id (``h100-sxm``) or a path to a YAML file -> a validated ``SystemSpec``.

    Returns a fresh copy, so callers may change it (what-if studies) without touching the cache.
    """
    if isinstance(hardware, SystemSpec):
        return hardware
    return _load_cached(str(hardware)).model_copy(deep=True)
