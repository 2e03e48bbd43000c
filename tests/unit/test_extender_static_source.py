"""StaticSource with assumptions applied: each placement is a new revision, one node changed."""

from __future__ import annotations

from test_extender_helpers import fleet

from edge_allocator.cluster.features import node_arrays
from edge_allocator.extender.service import StaticSource


def test_assumption_patches_one_node_as_the_watch_cache_does() -> None:
    snap = fleet()
    source = StaticSource(snap, apply_assumptions=True)
    node = snap.nodes[2]
    source.assume("uid-1", node.name, 250, 128)
    after = source.current()
    assert after is not None and after.revision == snap.revision + 1
    patched = after.node(node.name)
    assert patched.cpu_requested_m == node.cpu_requested_m + 250
    assert patched.mem_requested_mib == node.mem_requested_mib + 128
    assert patched.running_tasks == node.running_tasks + 1
    assert [n for n in after.nodes if n != patched] == [n for n in snap.nodes if n != node]
    node_arrays(after)  # the feature rows are patched from the parent, not rebuilt
    assert source.pod_footprint("uid-1") == (node.name, 250, 128)
    source.assume("uid-2", "no-such-node", 10, 10)  # unknown node: recorded, snapshot kept
    assert source.current() is after


def test_plain_static_source_never_changes() -> None:
    snap = fleet()
    source = StaticSource(snap)
    source.assume("uid-1", snap.nodes[0].name, 250, 128)
    assert source.current() is snap
