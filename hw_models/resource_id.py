"""Resource ids and bound labels: the two names for where an op's time goes.

Both travel as strings (the engine's resource table, the ``resource`` and ``bound``
columns, the JSON contract, copies' comma-joined ``resource``), but are built only by
formatting the records below and read only by ``parse`` and ``parse_bound``, so a
producer and a consumer cannot drift apart.

A *resource id* names one part of the machine (``ResourceId``)::

    dev<D>.<level>        memory level <level> of device D            kind "level"
    dev<D>.<unit>         unit in compute, atomics, launch: what
                          bound an op that moved no shared bytes        kind "unit"
    <tier>.mem            a far tier's memory                          kind "tier"
    <tier>.link.<dir>     one direction (h2d, d2h) of a tier's link    kind "link"
    pim.<tier>            a PIM tier's banks (internal bandwidth)      kind "pim"
    interconnect.<D>      device D's port on the in-node fabric        kind "interconnect"
    network.<D>           device D's NIC to other nodes                kind "network"

Names (``<level>``, ``<tier>``) are the system spec's, without ``.``, ``,``, ``:`` or
spaces. Where two lines fit, the earlier one wins (``dev0.launch`` is a unit, ``dev0.mem``
a level, ``pim.mem`` the memory of a tier named ``pim``), so a level may not be named like
a unit, a far tier ``dev<N>``, nor a PIM tier ``mem``: a record that would not read back
as itself is refused when it is made.

A *bound label* says which term of an op's uncontended cost dominated (``BoundLabel``)::

    compute | atomic | pim | latency | none
    memory:<level or tier>
    link:<tier> | link:interconnect | link:network

Every resource with bytes on it gives one label (``ResourceId.bound``), so a cost model
demand states its resource once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .errors import UserError

KINDS = ("level", "unit", "tier", "link", "pim", "interconnect", "network")
UNITS = ("compute", "atomics", "launch")
DIRECTIONS = ("h2d", "d2h")
#: bound-label terms that stand alone, and those that name what they bound on
BARE_TERMS = ("compute", "atomic", "pim", "latency", "none")
NAMED_TERMS = ("memory", "link")

_NAME = r"[^.,:\s]+"
_RESOURCE = re.compile(
    rf"dev(?P<dev>\d+)\.(?P<dname>{_NAME})"
    rf"|(?P<fabric>interconnect|network)\.(?P<fdev>\d+)"
    rf"|(?P<ltier>{_NAME})\.link\.(?P<dir>{'|'.join(DIRECTIONS)})"
    rf"|(?P<ttier>{_NAME})\.mem"
    rf"|pim\.(?P<ptier>{_NAME})")
_BOUND = re.compile(rf"(?P<bare>{'|'.join(BARE_TERMS)})|(?P<term>{'|'.join(NAMED_TERMS)}):(?P<name>{_NAME})")
_RESOURCE_FORMS = "dev<D>.<level|unit>, <tier>.mem, <tier>.link.h2d|d2h, pim.<tier>, interconnect.<D> or network.<D>"
_BOUND_FORMS = f"{', '.join(BARE_TERMS)}, memory:<name> or link:<name>"

#: the ``time_by_bound`` term that contention on a resource counts as (memory otherwise)
_CONTENTION_TERM = {"interconnect": "collective", "link": "link", "pim": "pim"}


class ResourceIdError(UserError):
    """A string that is not a resource id or bound label, or a record that cannot be one."""


def _fields(text: str) -> tuple[str, str, int | None, str] | None:
    """(kind, name, device, direction) of ``text``, or None: the one reading of the grammar."""
    m = _RESOURCE.fullmatch(text)
    if m is None:
        return None
    g = m.groupdict()
    if g["dev"] is not None:
        name = g["dname"]
        return ("unit" if name in UNITS else "level"), name, int(g["dev"]), ""
    if g["fabric"] is not None:
        return g["fabric"], "", int(g["fdev"]), ""
    if g["ltier"] is not None:
        return "link", g["ltier"], None, g["dir"]
    if g["ttier"] is not None:
        return "tier", g["ttier"], None, ""
    return "pim", g["ptier"], None, ""


@dataclass(frozen=True, slots=True)
class ResourceId:
    """One part of the machine; ``str()`` is its id, ``parse`` reads one back."""

    kind: str
    #: level, unit or tier name; empty for a fabric port
    name: str = ""
    #: device index for device levels, units and fabric ports; None for tiers
    device: int | None = None
    #: ``h2d`` or ``d2h`` on a link, empty otherwise
    direction: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS or _fields(str(self)) != (self.kind, self.name, self.device, self.direction):
            raise ResourceIdError(f"{self!r} has no resource id that reads back as itself (forms: {_RESOURCE_FORMS})")

    def __str__(self) -> str:
        k = self.kind
        if k in ("level", "unit"):
            return f"dev{self.device}.{self.name}"
        if k in ("interconnect", "network"):
            return f"{k}.{self.device}"
        if k == "link":
            return f"{self.name}.link.{self.direction}"
        if k == "tier":
            return f"{self.name}.mem"
        return f"pim.{self.name}"

    @property
    def bound(self) -> BoundLabel:
        """The label an op's cost gives when the bytes on this resource dominate it."""
        k = self.kind
        if k in ("level", "tier"):
            return BoundLabel("memory", self.name)
        if k in ("interconnect", "network"):
            return BoundLabel("link", k)
        if k == "link":
            return BoundLabel("link", self.name)
        if k == "pim":
            return BoundLabel("pim")
        raise ResourceIdError(f"{self} carries no bytes, so it bounds nothing by bandwidth")

    @property
    def contention_term(self) -> str:
        """The ``time_by_bound`` term that an op stretched by contention here counts as."""
        return _CONTENTION_TERM.get(self.kind, "memory")


@dataclass(frozen=True, slots=True)
class BoundLabel:
    """Which term of an op's uncontended cost dominated; ``str()`` is the ``bound`` column."""

    term: str
    #: the memory level, tier or link it bound on (``memory`` and ``link`` only)
    name: str = ""

    def __post_init__(self) -> None:
        if _BOUND.fullmatch(str(self)) is None:
            raise ResourceIdError(f"{self!r} is not a bound label (forms: {_BOUND_FORMS})")

    def __str__(self) -> str:
        return f"{self.term}:{self.name}" if self.name else self.term


@lru_cache(maxsize=4096)
def parse(text: str) -> ResourceId:
    """The resource id ``text`` (see the module docstring); one-line error if it is none."""
    f = _fields(str(text))
    if f is None:
        raise ResourceIdError(f"malformed resource id {text!r}: expected {_RESOURCE_FORMS}")
    return ResourceId(*f)


@lru_cache(maxsize=1024)
def parse_bound(text: str) -> BoundLabel:
    """The bound label ``text`` (see the module docstring); one-line error if it is none."""
    m = _BOUND.fullmatch(str(text))
    if m is None:
        raise ResourceIdError(f"malformed bound label {text!r}: expected {_BOUND_FORMS}")
    return BoundLabel(m["bare"] or m["term"], m["name"] or "")


def try_parse(text: object) -> ResourceId | None:
    """``parse``, or None for text that is not a resource id (frames other tools wrote)."""
    try:
        return parse(str(text))
    except ResourceIdError:
        return None


def try_parse_bound(text: object) -> BoundLabel | None:
    """``parse_bound``, or None for text that is not a bound label (frames other tools wrote)."""
    try:
        return parse_bound(str(text))
    except ResourceIdError:
        return None
