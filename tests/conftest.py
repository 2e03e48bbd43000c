"""Shared fixtures: the real dev cluster for integration and e2e tests.

The cluster is started once per session (or reused when one is already running, as after
``make cluster``) and stopped at the end only if this session started it. If it cannot start,
every test that needs it fails with the reason: cluster tests are never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_allocator.devcluster import DevCluster, FleetSpec
from edge_allocator.devcluster.cluster import DEFAULT_API_PORT
from edge_allocator.devcluster.processes import port_is_free

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def devcluster() -> Iterator[DevCluster]:
    cluster = DevCluster(fleet=FleetSpec())
    reused = cluster.is_healthy()
    if not reused and not port_is_free(DEFAULT_API_PORT):
        cluster.api_port = 0  # another checkout's cluster holds the default port: use any

    cluster.up()  # idempotent: reuses a healthy cluster, otherwise starts one; raises with why
    yield cluster
    if not reused and os.environ.get("EDGE_ALLOCATOR_KEEP_CLUSTER") != "1":
        cluster.down()


@pytest.fixture(scope="session")
def kubeconfig(devcluster: DevCluster) -> str:
    return str(devcluster.kubeconfig)


@pytest.fixture()
def namespace(devcluster: DevCluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    devcluster.kubectl("create", "namespace", name)
    yield name
    devcluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def crds(devcluster: DevCluster) -> DevCluster:
    """The cluster with the product's CRDs applied (server-side) and Established."""
    devcluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for name in ("edgetasks.edge-allocator.io", "edgenetworks.edge-allocator.io"):
        devcluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    return devcluster
