"""``from_sim``: the engine's one-row-per-op frame -> host, stream and link intervals."""

import numpy as np
import pandas as pd

from reports.frames import from_sim, timeline


def _wide():
    # op 1 is a view (no host cost, no device time); op 3 reads over the host link
    return pd.DataFrame({
        "id": [0, 1, 2, 3], "name": ["mm", "view", "add", "copy"], "kind": ["matmul", "view", "elementwise", "transfer"],
        "device": [0, 0, 0, 0], "stream": [0, 0, 1, 0],
        "issue_s": [5e-6, 5e-6, 10e-6, 15e-6], "start_s": [5e-6, 8e-6, 10e-6, 15e-6], "end_s": [8e-6, 8e-6, 12e-6, 30e-6],
        "bound": ["memory:hbm", "latency", "latency", "link:host"], "term": ["memory", "latency", "latency", "link"],
        "resource": ["dev0.hbm", "dev0.launch", "dev0.launch", "host.link.h2d"],
    })


def test_host_intervals_tile_the_dispatch_track():
    long = from_sim(_wide())
    host = long[long["resource"] == "host"].sort_values("start_s")
    # one interval per op that cost the host time; the view (issued at no cost) has none
    assert host["op_id"].tolist() == [0, 2, 3]
    assert np.allclose(host["start_s"], [0, 5e-6, 10e-6]) and np.allclose(host["end_s"], [5e-6, 10e-6, 15e-6])


def test_streams_and_links_become_lanes_and_copies_are_link_intervals():
    copies = pd.DataFrame({"op_id": [3], "resource": ["cxl.link.h2d"], "bytes": [1e6], "start_s": [0.0], "end_s": [4e-6]})
    tl = timeline(from_sim(_wide(), copies))
    assert set(tl["lane"]) == {"host", "dev0.stream0", "dev0.stream1", "host.link.h2d", "cxl.link.h2d"}
    assert (tl.loc[tl["lane"] == "host.link.h2d", "op_id"] == 3).all()
    assert "dev0.hbm" not in set(tl["lane"])  # memory levels are not lanes
    assert tl.loc[tl["lane"] == "dev0.stream0", "term"].tolist() == ["memory", "latency", "link"]
