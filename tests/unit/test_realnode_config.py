"""The real node's pins and configuration documents, checked without starting anything."""

from __future__ import annotations

import re
from pathlib import Path

from edge_allocator.devcluster import realnode
from edge_allocator.devcluster.components import GROUPS, KUBERNETES_VERSION, NODE_GROUPS
from edge_allocator.devcluster.kwokconfig import kwokctl_documents, real_node_patches

HACK = Path(__file__).resolve().parents[2] / "hack" / "devcluster"


def _pins(go_mod: Path) -> tuple[str, dict[str, str]]:
    text = go_mod.read_text()
    (kube,) = re.findall(r"k8s\.io/kubernetes (v\S+)", text)
    replaces = dict(re.findall(r"^\s*(k8s\.io/\S+) => k8s\.io/\S+ (v\S+)", text, re.M))
    return kube, replaces


def test_node_components_come_from_the_control_planes_release() -> None:
    cp_version, cp_replaces = _pins(HACK / "kubernetes" / "go.mod")
    node_version, node_replaces = _pins(HACK / "kubernetes-node" / "go.mod")
    assert cp_version == node_version == KUBERNETES_VERSION
    assert node_replaces == cp_replaces
    node = {g.group: g for g in NODE_GROUPS}["kubernetes-node"]
    assert node.version == KUBERNETES_VERSION
    assert set(node.packages) == {"kubelet", "kube-proxy"}
    # Optional groups must not change what (and under which cache key) the control plane builds.
    assert not {g.group for g in GROUPS} & {g.group for g in NODE_GROUPS}


def test_kwokctl_patches_are_top_level_and_free_the_real_node_from_kwok(tmp_path: Path) -> None:
    extra = real_node_patches("192.0.2.2", "10.96.0.0/16", "10.96.0.1", tmp_path)
    config = kwokctl_documents(36543, tmp_path, extra)[0]
    assert "componentsPatches" not in config["options"]  # kwokctl ignores it there
    patches = {
        p["name"]: {a["key"]: a["value"] for a in p["extraArgs"]}
        for p in config["componentsPatches"]
    }
    assert patches["kube-apiserver"]["advertise-address"] == "192.0.2.2"
    assert patches["kube-apiserver"]["bind-address"] == "0.0.0.0"
    assert patches["kwok-controller"]["manage-all-nodes"] == "false"
    assert "10.96.0.1" in config["options"]["kubeApiserverCertSANs"]
    plain = kwokctl_documents(36443, tmp_path)[0]
    assert "componentsPatches" not in plain and plain["options"]["bindAddress"] == "127.0.0.1"


def test_runtime_and_kubelet_settings_this_host_needs(tmp_path: Path) -> None:
    toml = realnode._containerd_config(tmp_path, tmp_path, tmp_path / "s.sock", tmp_path)
    assert "restrict_oom_score_adj = true" in toml and "SystemdCgroup = false" in toml
    kubelet = realnode._kubelet_config("192.0.2.2", tmp_path, tmp_path / "s.sock", 1, tmp_path)
    assert kubelet["failCgroupV1"] is False and kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["clusterDNS"] == ["192.0.2.2"]
    assert kubelet["registerWithTaints"] == [
        {"key": realnode.REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}
    ]
    proxy = realnode._kube_proxy_config(tmp_path, "n", 1, 2)
    assert proxy["mode"] == "iptables"
