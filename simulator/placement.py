"""Where tensors live: which memory tier holds weights, the KV cache and activations.

``"device"`` (the default) is the device's own main memory (HBM on a GPU, DRAM on a
CPU); any other value names one of the system's tiers (``host``, a CXL expander, PIM
memory), whose bytes reach the device over that tier's link. The device main-memory
level's name (``hbm``) is accepted as a synonym of ``"device"``.

``prefetch=True`` means a separate stream copies far-tier weights and KV cache into
device memory ahead of use: ops then read them from device memory, and the engine, not
the per-op cost, accounts for the copies on the link.
"""

from __future__ import annotations

from dataclasses import dataclass

DEVICE = "device"

#: tensor role -> which Placement field decides its tier
_ROLE_FIELD = {"weight": "weights", "kv_cache": "kv_cache", "activation": "activations", "output": "activations"}


class PlacementError(ValueError):
    """A placement naming a tier the system does not have."""

    user_facing = True


@dataclass(frozen=True, slots=True)
class Placement:
    weights: str = DEVICE
    kv_cache: str = DEVICE
    activations: str = DEVICE
    prefetch: bool = False

    def tier_of(self, role: str) -> str:
        """``"device"`` or a tier name for a tensor of ``role`` (weight, kv_cache, activation, output)."""
        try:
            return getattr(self, _ROLE_FIELD[role])
        except KeyError:
            raise PlacementError(f"unknown tensor role {role!r}; known: {', '.join(_ROLE_FIELD)}") from None

    def resolved(self, system) -> Placement:
        """This placement with device main-memory synonyms (``hbm``) spelled ``"device"``."""
        main = system.device.main_memory.name
        fix = {f: DEVICE for f in ("weights", "kv_cache", "activations") if getattr(self, f) == main}
        if not fix:
            return self
        return Placement(**{**{f: getattr(self, f) for f in ("weights", "kv_cache", "activations")},
                            **fix, "prefetch": self.prefetch})

    def validate(self, system) -> Placement:
        """Raise ``PlacementError`` (one line) unless every named tier exists in ``system``."""
        p = self.resolved(system)
        for f in ("weights", "kv_cache", "activations"):
            where = getattr(p, f)
            if where != DEVICE and where not in system.tier_names:
                have = ", ".join([f"{DEVICE} ({system.device.main_memory.name})"] + system.tier_names)
                raise PlacementError(f"{f} placed in {where!r}, but system {system.id!r} has no such tier; it has: {have}")
        return p

    def describe(self) -> str:
        s = f"weights={self.weights} kv_cache={self.kv_cache} activations={self.activations}"
        return s + (" prefetch" if self.prefetch else "")
