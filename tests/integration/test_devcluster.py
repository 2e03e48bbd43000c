"""The dev cluster is a real Kubernetes control plane: version, nodes, scheduling, metrics."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from edge_allocator.devcluster import DevCluster, DevClusterError, FleetSpec
from edge_allocator.devcluster.components import KUBERNETES_VERSION
from edge_allocator.devcluster.fleet import NODE_CLASSES

pytestmark = pytest.mark.cluster


def _json(cluster: DevCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def _wait(what: str, timeout: float, check: Any) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def test_api_server_reports_the_pinned_version(devcluster: DevCluster) -> None:
    version = json.loads(devcluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == KUBERNETES_VERSION
    assert version["clientVersion"]["gitVersion"] == KUBERNETES_VERSION


def test_fleet_nodes_are_ready_with_labels_and_capacities(devcluster: DevCluster) -> None:
    nodes = {n["metadata"]["name"]: n for n in _json(devcluster, "get", "nodes")["items"]}
    expected = devcluster.fleet.layout()
    assert len(expected) == 12
    for name, site, cls in expected:
        node = nodes[name]
        labels = node["metadata"]["labels"]
        assert labels["topology.kubernetes.io/zone"] == site
        assert labels["edge-allocator.io/node-class"] == cls.name
        assert node["status"]["allocatable"]["cpu"] == str(cls.cpu)
        assert node["status"]["allocatable"]["memory"] == f"{cls.memory_gib}Gi"
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", name
    assert {labels_cls for _, _, labels_cls in expected} >= {NODE_CLASSES["server"]}
    assert {s for _, s, _ in expected} == {"site-a", "site-b", "site-c"}


def _pod(name: str, cpu: str, memory: str, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "app",
                "image": "registry.local/edge/app:1",
                "resources": {"requests": {"cpu": cpu, "memory": memory}},
            }
        ]
    }
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_kube_scheduler_binds_a_pod_that_goes_running(
    devcluster: DevCluster, namespace: str
) -> None:
    devcluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(_pod("p1", "500m", "256Mi"))
    )

    def running() -> Any:
        pod = _json(devcluster, "get", "pod", "p1", "-n", namespace)
        return pod if pod["status"].get("phase") == "Running" else None

    pod = _wait("pod p1 Running", 60, running)
    assert pod["spec"]["nodeName"] in {n for n, _, _ in devcluster.fleet.layout()}
    events = _json(devcluster, "get", "events", "-n", namespace)["items"]
    scheduled = [
        e for e in events if e["reason"] == "Scheduled" and e["involvedObject"]["name"] == "p1"
    ]
    assert scheduled, f"no Scheduled event for p1 in {[e['reason'] for e in events]}"
    assert pod["spec"]["nodeName"] in scheduled[0]["message"]
    assert scheduled[0].get("reportingComponent") == "default-scheduler"


def test_deployment_of_20_replicas_becomes_available(
    devcluster: DevCluster, namespace: str
) -> None:
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 20,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": _pod("x", "50m", "32Mi")["spec"],
            },
        },
    }
    devcluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(deploy))

    def available() -> Any:
        d = _json(devcluster, "get", "deployment", "web", "-n", namespace)
        return d["status"].get("availableReplicas", 0) == 20

    _wait("20 available replicas", 120, available)


def _top_cpu_millicores(devcluster: DevCluster, node: str) -> int | None:
    out = devcluster.kubectl("top", "node", node, "--no-headers", check=False)
    if out.returncode != 0 or not out.stdout.strip():
        return None
    cpu = out.stdout.split()[1]
    return int(cpu[:-1]) if cpu.endswith("m") else int(float(cpu) * 1000)


def test_kubectl_top_nodes_usage_rises_with_placed_pods(
    devcluster: DevCluster, namespace: str
) -> None:
    node = next(n for n, _, c in devcluster.fleet.layout() if c.name == "server")
    before = _wait(f"kubectl top node {node}", 120, lambda: _top_cpu_millicores(devcluster, node))
    for i in range(4):
        devcluster.kubectl(
            "apply", "-n", namespace, "-f", "-",
            input=json.dumps(_pod(f"load-{i}", "2", "1Gi", node=node)),
        )  # fmt: skip
    # Each pod uses 60% of its 2-CPU request (the dev cluster's usage model): +4800m in total.
    after = _wait(
        f"usage on {node} to rise by >= 3000m over {before}m",
        120,
        lambda: (
            (v := _top_cpu_millicores(devcluster, node)) is not None and v >= before + 3000 and v
        ),
    )
    assert after >= before + 3000


def test_port_in_use_gives_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cluster = DevCluster(fleet=FleetSpec(nodes=1), api_port=port, name="porttest",
                             state_root=tmp_path / "state")  # fmt: skip
        with pytest.raises(DevClusterError, match=f"port {port} on 127.0.0.1 is already in use"):
            cluster.up()


def _pids_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def test_crashed_run_is_recovered_and_down_leaves_no_process_or_port(tmp_path: Path) -> None:
    """A second, separate small cluster: crashed (SIGKILL, pid files and data left behind),
    started again over the debris, stopped, and nothing of it remains."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = tmp_path / "second"
    cluster = DevCluster(fleet=FleetSpec(nodes=2, sites=("x",)), api_port=port,
                         name="downtest", state_root=state)  # fmt: skip
    cluster.up()
    try:
        assert cluster.is_healthy()
        crashed = _pids_mentioning(str(state))
        assert crashed, "the second cluster's processes should be running"
        for pid in crashed:
            os.kill(pid, signal.SIGKILL)
        _wait("the killed components to exit", 30, lambda: not _pids_mentioning(str(state)))
        assert list((cluster.cluster_dir / "pids").glob("*.pid")), "stale pid files expected"
        assert not cluster.is_healthy()
        cluster.up()  # over the stale pid files, kubeconfig and etcd data
        assert cluster.is_healthy()
        assert cluster.status()["ready_nodes"] == 2
    finally:
        cluster.down()
    assert not _pids_mentioning(str(state))
    with socket.socket() as s:
        # SO_REUSEADDR: closed connections in TIME_WAIT do not count, a listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # raises if anything still listens there
        s.listen()
    assert not state.exists()


def test_an_extra_scheduler_with_its_own_profile_binds_its_pods(
    devcluster: DevCluster, namespace: str, tmp_path: Path
) -> None:
    """Extra scheduler configuration plugs in without touching the cluster code."""
    config = tmp_path / "second.yaml"
    config.write_text(
        "apiVersion: kubescheduler.config.k8s.io/v1\n"
        "kind: KubeSchedulerConfiguration\n"
        "profiles:\n"
        "- schedulerName: second-scheduler\n"
    )
    devcluster.start_scheduler("second-test", config)
    try:
        pod = _pod("via-second", "100m", "64Mi")
        pod["spec"]["schedulerName"] = "second-scheduler"
        devcluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))

        def scheduled_by_second() -> Any:
            events = _json(devcluster, "get", "events", "-n", namespace)["items"]
            return [
                e
                for e in events
                if e["reason"] == "Scheduled" and e.get("reportingComponent") == "second-scheduler"
            ]

        _wait("a Scheduled event from second-scheduler", 60, scheduled_by_second)
        assert "second-test" in devcluster.status()["schedulers"]
    finally:
        devcluster.stop_scheduler("second-test")
    assert "second-test" not in devcluster.status()["schedulers"]
