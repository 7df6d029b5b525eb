"""Where the ranks of a TP x EP x PP layout live, and what their collectives and
point-to-point sends cost (the rank order and the hierarchical collectives of
``simulator.scaleout``)."""

from __future__ import annotations

from dataclasses import dataclass

from hw_models import physics
from hw_models.resource_id import ResourceId
from workloads.payloads import payload


class ScaleOutError(ValueError):
    """A parallel layout the system or model cannot take; one line for the user."""

    user_facing = True


@dataclass(frozen=True)
class Layout:
    tp: int = 1
    pp: int = 1
    ep: int = 1
    nodes: int = 1
    per_node: int = 1

    @property
    def world(self) -> int:
        return self.tp * self.ep * self.pp

    def node_of(self, rank: int) -> int:
        return rank // self.per_node

    def stage_rank(self, s: int) -> int:
        return s * self.tp * self.ep

    def span(self, size: int) -> tuple[int, int]:
        """(ranks per node, nodes) of a group of ``size`` neighbouring ranks."""
        if size <= self.per_node:
            return size, 1
        return self.per_node, size // self.per_node

    def p2p_level(self, s: int) -> str:
        """The link between stage ``s`` and ``s + 1``."""
        a, b = self.stage_rank(s), self.stage_rank(s + 1)
        return "network" if self.node_of(a) != self.node_of(b) else "interconnect"


def with_nodes(system, nodes: int):
    """``system`` as a cluster of ``nodes`` nodes (``--nodes``)."""
    nodes = int(nodes)
    if nodes < 1:
        raise ScaleOutError(f"--nodes must be >= 1, got {nodes}")
    if nodes > 1 and system.network is None:
        raise ScaleOutError(f"--nodes {nodes}: system {system.id!r} has no inter-node 'network' in its spec; "
                            "add one (bandwidth, latency, efficiency with sources) or use --nodes 1")
    return system if nodes == system.nodes else system.model_copy(update={"nodes": nodes})


def layout(system, tp: int = 1, pp: int = 1, ep: int = 1, num_layers: int | None = None) -> Layout:
    """Check a TP x EP x PP layout against the system (and the model's layers); one-line errors."""
    for flag, v in (("--tp", tp), ("--pp", pp), ("--ep", ep)):
        if int(v) < 1:
            raise ScaleOutError(f"{flag} must be a positive integer, got {v}")
    lay = Layout(int(tp), int(pp), int(ep), system.nodes, system.num_devices)
    if num_layers is not None and lay.pp > num_layers:
        raise ScaleOutError(f"--pp {pp} exceeds the {num_layers} layers of the model; allowed: 1..{num_layers}")
    have = system.num_devices * system.nodes
    if lay.world > have:
        raise ScaleOutError(f"--tp {tp} x --ep {ep} x --pp {pp} = {lay.world} devices exceeds the {have} of "
                            f"{system.nodes} node(s) x {system.num_devices} device(s) of {system.id!r}; "
                            + ("raise --nodes or lower the degrees" if system.network is not None
                               else "lower the degrees (the system has no inter-node network for --nodes)"))
    g = lay.tp * lay.ep
    if g > lay.per_node and g % lay.per_node:
        raise ScaleOutError(f"--tp {tp} x --ep {ep} = {g} devices spans nodes of {lay.per_node} devices unevenly; "
                            f"use a multiple of {lay.per_node}")
    return lay


def _rate(link, nbytes: float) -> float:
    return float(link.bandwidth.value * link.efficiency(max(nbytes, 1.0)))


def collective_cost(op, system, lay: Layout, base):
    """``OpCost`` of a collective whose group spans nodes: hierarchical, both levels as
    demands (``interconnect.0``, ``network.0``); ``base`` (the single-node cost) otherwise."""
    from .costmodel import Demand, OpCost

    # the kind and message the single-node cost model prices (the record's fills)
    c = payload(op)
    n = c.n_ranks
    if op.attrs.get("ep"):
        # an EP group is every tp-th rank of the stage's tp x ep block: it spans the block's nodes
        nn = lay.span(lay.tp * lay.ep)[1]
        g = max(1, n // nn)
    else:
        g, nn = lay.span(n)
    if nn <= 1 or system.network is None:
        return base
    size = float(c.bytes)
    ic, net = system.interconnect, system.network
    r = physics.hierarchical_collective(c.kind, size, g, nn,
                                        (_rate(ic, size), ic.latency.value), (_rate(net, size / g), net.latency.value))
    call = max(net.collective_latency.value if net.collective_latency else 0.0, ic.collective_latency.value)
    dems = []
    # one device per stage is simulated, so its ports are device 0's
    ic_port, net_port = ResourceId("interconnect", device=0), ResourceId("network", device=0)
    if r["intra_bytes"] > 0:
        dems.append(Demand(str(ic_port), r["intra_bytes"], _rate(ic, size), str(ic_port.bound), ic.bandwidth.value))
    if r["inter_bytes"] > 0:
        dems.append(Demand(str(net_port), r["inter_bytes"], _rate(net, size / g), str(net_port.bound),
                           net.bandwidth.value))
    body = r["time_s"]
    fixed = call + body - max((d.time_s for d in dems), default=0.0)
    op.attrs["levels"] = {"interconnect": (r["intra_bytes"], r["intra_s"]), "network": (r["inter_bytes"], r["inter_s"])}
    bound = str((net_port if r["inter_s"] >= r["intra_s"] else ic_port).bound)
    return OpCost(base.op_id, 0.0, dems, fixed, 0.0, 0.0, call + body, bound, body, False, 0.0, size, 1, "")


def cost_fn(lay: Layout):
    """``graph_costs`` with each collective priced by ``collective_cost`` for ``lay``."""

    def fn(graph, system, placement):
        from .costmodel import graph_costs

        costs = graph_costs(graph, system, placement)
        for i, op in enumerate(graph.ops):
            if op.kind == "collective":
                costs[i] = collective_cost(op, system, lay, costs[i])
        return costs
    return fn


def link_time(level: str, nbytes: float, system) -> float:
    """Seconds of one point-to-point send of ``nbytes`` on a link level."""
    link = system.network if level == "network" else system.interconnect
    if link is None or nbytes <= 0:
        return 0.0
    return link.latency.value + nbytes / _rate(link, nbytes)
