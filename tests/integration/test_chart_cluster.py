"""The chart against the real API server: server-side dry run, install, upgrade, uninstall.

kwok plays the kubelets, so the chart's pods "run" without their images being pulled: this
checks what the API server accepts and what Helm leaves behind, not the containers themselves.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edge_allocator.devcluster import DevCluster, paths

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "edge-allocator"
ALL_OPTIONS = ["networkPolicy.enabled=true", "grafanaDashboard.enabled=true"]

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


def helm(cluster: DevCluster, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    cmd = [str(paths.bin_dir() / "helm"), "--kubeconfig", str(cluster.kubeconfig), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def manifest_objects(text: str) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of every object in a rendered manifest."""
    out = set()
    for doc in yaml.safe_load_all(text):
        if doc:
            meta = doc["metadata"]
            out.add((doc["kind"], meta.get("namespace", ""), meta["name"]))
    return out


def existing(cluster: DevCluster, objs: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    found = set()
    for kind, ns, name in objs:
        args = ["get", kind, name, "-o", "name", *(["-n", ns] if ns else [])]
        if cluster.kubectl(*args, check=False).returncode == 0:
            found.add((kind, ns, name))
    return found


@pytest.fixture()
def release(devcluster: DevCluster, namespace: str) -> Iterator[str]:
    name = f"ea-{uuid.uuid4().hex[:6]}"
    yield name
    helm(devcluster, "uninstall", name, "-n", namespace, "--ignore-not-found", "--wait")


def test_every_rendered_object_passes_server_side_dry_run(
    devcluster: DevCluster, namespace: str
) -> None:
    args = ["template", "dry", str(CHART), "-n", namespace, "--include-crds"]
    for s in ALL_OPTIONS:
        args += ["--set", s]
    rendered = helm(devcluster, *args)
    assert rendered.returncode == 0, rendered.stderr
    objs = manifest_objects(rendered.stdout)
    applied = devcluster.kubectl(
        "apply", "--dry-run=server", "-o", "json", "-f", "-", input=rendered.stdout, check=False
    )
    assert applied.returncode == 0, applied.stderr
    body = json.loads(applied.stdout)
    accepted = {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
        for o in body.get("items", [body])
    }
    assert accepted == objs
    assert {"CustomResourceDefinition", "NetworkPolicy"} <= {k for k, _, _ in objs}


def _wait_available(cluster: DevCluster, namespace: str, release: str) -> dict[str, int]:
    deadline = time.monotonic() + 120
    while True:
        out = cluster.kubectl(
            "get", "deploy", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}",
            "-o", "json",
        )  # fmt: skip
        items = json.loads(out.stdout)["items"]
        ready = {
            d["metadata"]["name"]: d["status"].get("availableReplicas", 0)
            for d in items
            if d["status"].get("availableReplicas", 0) == d["spec"]["replicas"]
        }
        if items and len(ready) == len(items):
            return ready
        if time.monotonic() > deadline:
            pods = cluster.kubectl(
                "get", "pods", "-n", namespace, "-o", "wide", "-l",
                f"app.kubernetes.io/instance={release}", check=False,
            )  # fmt: skip
            status = {d["metadata"]["name"]: d["status"] for d in items}
            raise AssertionError(f"deployments not available in 120 s: {status}\n{pods.stdout}")
        time.sleep(1)


def test_install_upgrade_uninstall_leave_no_orphans(
    devcluster: DevCluster, namespace: str, release: str
) -> None:
    installed = helm(
        devcluster, "install", release, str(CHART), "-n", namespace, "--timeout", "150s",
        "--set", "extender.adminToken.enabled=true",
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    assert "port-forward svc/" in installed.stdout  # NOTES tell the user what to do next
    available = _wait_available(devcluster, namespace, release)
    assert sorted(n.rsplit("-", 1)[1] for n in available) == ["extender", "operator", "scheduler"]
    first = manifest_objects(helm(devcluster, "get", "manifest", release, "-n", namespace).stdout)
    assert existing(devcluster, first) == first
    for crd in ("edgetasks.edge-allocator.io", "edgenetworks.edge-allocator.io"):
        assert devcluster.kubectl("get", "crd", crd, check=False).returncode == 0, crd

    def secret(suffix: str, key: str) -> str:
        out = devcluster.kubectl(
            "get", "secret", f"{release}-edge-allocator-{suffix}", "-n", namespace,
            "-o", f"jsonpath={{.data.{key}}}",
        )  # fmt: skip
        assert out.stdout, f"secret {suffix} has no {key}"
        return out.stdout

    def cert() -> str:
        return secret("extender-tls", "tls\\.crt") + secret("extender-admin", "token")

    cert_before = cert()
    upgraded = helm(
        devcluster, "upgrade", release, str(CHART), "-n", namespace,
        "--set", "scheduler.enabled=false", "--set", "extender.replicas=3",
        "--set", "podDisruptionBudget.enabled=false", "--set", "networkPolicy.enabled=true",
        "--set", "extender.adminToken.enabled=true",
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    second = manifest_objects(helm(devcluster, "get", "manifest", release, "-n", namespace).stdout)
    removed = first - second
    assert ("Deployment", namespace, f"{release}-edge-allocator-scheduler") in removed
    assert ("ClusterRoleBinding", "", f"{release}-edge-allocator-scheduler-kube-scheduler") in (
        removed
    )
    assert existing(devcluster, removed) == set(), "objects dropped by the upgrade remain"
    assert existing(devcluster, second) == second
    assert cert() == cert_before, "the generated certificate or token changed on upgrade"
    available = _wait_available(devcluster, namespace, release)
    assert available[f"{release}-edge-allocator-extender"] == 3

    uninstalled = helm(devcluster, "uninstall", release, "-n", namespace, "--wait")
    assert uninstalled.returncode == 0, uninstalled.stderr
    assert existing(devcluster, first | second) == set(), "uninstall left objects behind"
    leftover = devcluster.kubectl(
        "get", "all,sa,secret,cm,pdb,role,rolebinding,networkpolicy", "-n", namespace,
        "-l", f"app.kubernetes.io/instance={release}", "-o", "name",
    )  # fmt: skip
    assert leftover.stdout.strip() == ""
