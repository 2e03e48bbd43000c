"""What kwokctl is told: binaries, 127.0.0.1 binding, heartbeats, and simulated node metrics.

The metrics part is what makes ``kubectl top nodes`` (and the extender's load features) follow
the pods placed on each kwok node, as metrics-server does on k3s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_allocator.devcluster.components import KUBERNETES_VERSION

HOST = "127.0.0.1"

# Usage that follows the pods on a node: an explicit kwok annotation wins; otherwise a pod uses
# 60% of its CPU request and 70% of its memory request (1m / 1Mi when it requests nothing).
_USAGE = {
    "cpu": (
        '"kwok.x-k8s.io/usage-cpu" in pod.metadata.annotations'
        ' ? Quantity(pod.metadata.annotations["kwok.x-k8s.io/usage-cpu"])'
        ' : ("cpu" in container.resources.requests'
        ' ? container.resources.requests["cpu"] * 0.6 : Quantity("1m"))'
    ),
    "memory": (
        '"kwok.x-k8s.io/usage-memory" in pod.metadata.annotations'
        ' ? Quantity(pod.metadata.annotations["kwok.x-k8s.io/usage-memory"])'
        ' : ("memory" in container.resources.requests'
        ' ? container.resources.requests["memory"] * 0.7 : Quantity("1Mi"))'
    ),
}


# Node-level kubelet metrics: the pods' usage plus an idle baseline (100m CPU, 256 MiB), as a
# real node's OS and kubelet use; metrics-server drops nodes that report zero usage.
_IDLE_CPU_CORES = 0.1
_IDLE_MEMORY_BYTES = 256 * 1024 * 1024


def _resource_metrics() -> dict[str, Any]:
    """kwok ``Metric`` serving kubelet-style ``/metrics/resource`` for every node."""

    def m(name: str, dimension: str, kind: str, value: str) -> dict[str, Any]:
        labels = {
            "node": [],
            "pod": [("namespace", "pod.metadata.namespace"), ("pod", "pod.metadata.name")],
            "container": [
                ("container", "container.name"),
                ("namespace", "pod.metadata.namespace"),
                ("pod", "pod.metadata.name"),
            ],
        }[dimension]
        return {
            "name": name,
            "dimension": dimension,
            "kind": kind,
            "help": name,
            "labels": [{"name": k, "value": v} for k, v in labels],
            "value": value,
        }

    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Metric",
        "metadata": {"name": "metrics-resource"},
        "spec": {
            "path": "/metrics/nodes/{nodeName}/metrics/resource",
            "metrics": [
                m("scrape_error", "node", "gauge", "0"),
                m("container_start_time_seconds", "container", "gauge", "pod.SinceSecond()"),
                m(
                    "container_cpu_usage_seconds_total", "container", "counter",
                    'pod.CumulativeUsage("cpu", container.name)',
                ),
                m(
                    "container_memory_working_set_bytes", "container", "gauge",
                    'pod.Usage("memory", container.name)',
                ),
                m("pod_cpu_usage_seconds_total", "pod", "counter", 'pod.CumulativeUsage("cpu")'),
                m("pod_memory_working_set_bytes", "pod", "gauge", 'pod.Usage("memory")'),
                m(
                    "node_cpu_usage_seconds_total", "node", "counter",
                    f'node.CumulativeUsage("cpu") + {_IDLE_CPU_CORES} * node.SinceSecond()',
                ),
                m(
                    "node_memory_working_set_bytes", "node", "gauge",
                    f'node.Usage("memory") + {_IDLE_MEMORY_BYTES}.0',
                ),
            ],
        },
    }  # fmt: skip


def real_node_patches(
    node_ip: str, service_cidr: str, service_ip: str, pki_dir: Path
) -> dict[str, Any]:
    """Options for a cluster with a real kubelet node (``dev up --real-node``).

    Real pods reach the API server through the ``kubernetes`` Service, whose endpoint is the
    advertised address: the API server listens on all addresses and advertises the node's (its
    certificate names the Service IP). kwok manages only the nodes annotated as fake, so it
    leaves the real node to its kubelet. The API server authenticates to kubelet (logs, exec)
    with the admin certificate.
    """

    def args(**kv: str) -> list[dict[str, str]]:
        return [{"key": k.replace("_", "-"), "value": v} for k, v in kv.items()]

    return {
        "options": {"kubeApiserverCertSANs": [service_ip, node_ip]},
        "componentsPatches": [
            {
                "name": "kube-apiserver",
                "extraArgs": args(
                    bind_address="0.0.0.0",
                    advertise_address=node_ip,
                    service_cluster_ip_range=service_cidr,
                    kubelet_client_certificate=str(pki_dir / "admin.crt"),
                    kubelet_client_key=str(pki_dir / "admin.key"),
                    kubelet_preferred_address_types="InternalIP",
                ),
            },
            {
                "name": "kwok-controller",
                "extraArgs": args(
                    manage_all_nodes="false",
                    manage_nodes_with_annotation_selector="kwok.x-k8s.io/node=fake",
                ),
            },
        ],
    }


def kwokctl_documents(
    api_port: int, bin_dir: Path, extra: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The KwokctlConfiguration plus the usage and metric resources, as YAML-ready dicts.

    ``extra``: ``options`` merged into the options, ``componentsPatches`` (real_node_patches).
    """

    def b(name: str) -> Path:
        return bin_dir / name

    options: dict[str, Any] = {
        "runtime": "binary",
        "bindAddress": HOST,
        "kubeApiserverPort": api_port,
        "kubeVersion": KUBERNETES_VERSION,
        "kubeApiserverBinary": str(b("kube-apiserver").resolve()),
        "kubeControllerManagerBinary": str(b("kube-controller-manager").resolve()),
        "kubeSchedulerBinary": str(b("kube-scheduler").resolve()),
        "kubectlBinary": str(b("kubectl").resolve()),
        "kwokControllerBinary": str(b("kwok").resolve()),
        "etcdBinary": str(b("etcd").resolve()),
        "metricsServerBinary": str(b("metrics-server").resolve()),
        "enable": ["metrics-server"],
        # Notice a lost node in ~40 s rather than upstream's 40 s..5 min defaults.
        "kubeControllerManagerNodeMonitorGracePeriodMilliseconds": 40_000,
        "nodeLeaseDurationSeconds": 40,
        "heartbeatFactor": 1.0,  # kwokctl's default multiplies the two above by 5
        **(extra or {}).get("options", {}),
    }
    usage = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterResourceUsage",
        "metadata": {"name": "usage-from-requests"},
        "spec": {"usages": [{"usage": {r: {"expression": e} for r, e in _USAGE.items()}}]},
    }
    return [
        {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": options,
            **(
                {"componentsPatches": extra["componentsPatches"]}
                if extra and extra.get("componentsPatches")
                else {}
            ),
        },
        usage,
        _resource_metrics(),
    ]
