"""Pure parts of the dev cluster: fleet layout, Go version checks, pins and stamps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge_allocator.devcluster.build import BuildError, parse_go_version
from edge_allocator.devcluster.components import GROUPS, MIN_GO
from edge_allocator.devcluster.fleet import FleetSpec, fleet_manifest

ROOT = Path(__file__).resolve().parents[2]


def test_default_fleet_is_12_nodes_over_3_sites_with_a_server_each() -> None:
    layout = FleetSpec().layout()
    assert len(layout) == 12
    by_site: dict[str, list[str]] = {}
    for _, site, cls in layout:
        by_site.setdefault(site, []).append(cls.name)
    assert sorted(by_site) == ["site-a", "site-b", "site-c"]
    for classes in by_site.values():
        assert classes == ["server", "small", "mid", "small"]
    assert len({name for name, _, _ in layout}) == 12


def test_large_fleet_names_are_unique_and_mixed() -> None:
    layout = FleetSpec(nodes=1000, sites=tuple(f"s{i}" for i in range(20))).layout()
    assert len({n for n, _, _ in layout}) == 1000
    counts = {c: sum(1 for _, _, k in layout if k.name == c) for c in ("small", "mid", "server")}
    # 50 nodes a site = 6 whole cycles of the 8-slot pattern (1 server, 4 small, 3 mid) + 2
    # slots (server, small): per site 7 servers, 25 small, 18 mid; times 20 sites.
    assert counts == {"small": 500, "mid": 360, "server": 140}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": 0}, "nodes: must be >= 1"),
        ({"sites": ()}, "sites: at least one site"),
        ({"sites": ("a", "a")}, "sites: names must be unique"),
    ],
)
def test_fleet_spec_rejects_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FleetSpec(**kwargs)  # type: ignore[arg-type]


def test_fleet_manifest_marks_nodes_for_kwok() -> None:
    text = fleet_manifest(FleetSpec(nodes=2, sites=("a",)))
    assert text.count('"kwok.x-k8s.io/node": "fake"') == 2
    assert '"topology.kubernetes.io/zone": "a"' in text


@pytest.mark.parametrize(
    ("text", "expected"), [("go1.26.8", (1, 26)), ("go1.24", (1, 24)), ("go1.30rc1", (1, 30))]
)
def test_parse_go_version(text: str, expected: tuple[int, int]) -> None:
    assert parse_go_version(text) == expected
    assert expected >= MIN_GO


def test_parse_go_version_rejects_garbage() -> None:
    with pytest.raises(BuildError, match="cannot read the Go version"):
        parse_go_version("devel")


def test_pinned_versions_match_the_go_modules() -> None:
    """The version a binary is stamped with is the version its go.mod pins."""
    module_of = {
        "kubernetes": "k8s.io/kubernetes",
        "etcd": "go.etcd.io/etcd/server/v3",
        "kwok": "sigs.k8s.io/kwok",
        "metrics-server": "sigs.k8s.io/metrics-server",
        "helm": "helm.sh/helm/v3",
    }
    for group in GROUPS:
        gomod = (ROOT / "hack" / "devcluster" / group.group / "go.mod").read_text()
        m = re.search(
            rf"^\s*(?:require\s+)?{re.escape(module_of[group.group])} (v\S+)", gomod, re.M
        )
        assert m, f"{group.group}: {module_of[group.group]} not required in go.mod"
        assert m.group(1) == group.version, group.group


def test_kubernetes_stamps_set_the_server_version() -> None:
    k8s = next(g for g in GROUPS if g.group == "kubernetes")
    flags = k8s.ldflags()
    assert f"-X k8s.io/component-base/version.gitVersion={k8s.version}" in flags
    assert "-X k8s.io/component-base/version.gitMinor=34" in flags
