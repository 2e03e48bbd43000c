"""The pinned Go components of the dev cluster: which module builds which command, at what version.

Each group is one Go module under ``hack/devcluster/<group>``; its go.mod pins the version and
this table says what to build and how to stamp it so ``/version`` reports the real release.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_GO = (1, 24)


@dataclass(frozen=True)
class ComponentGroup:
    """One Go module and the commands built from it in one ``go build`` invocation."""

    group: str
    version: str
    packages: dict[str, str]  # binary name -> Go package
    stamps: tuple[str, ...] = ()  # Go package paths whose version variables get -X stamps
    extra_ldflags: tuple[str, ...] = ()
    module: str = ""  # directory under hack/devcluster; default: the group's name

    @property
    def module_name(self) -> str:
        return self.module or self.group

    def ldflags(self) -> str:
        flags = ["-s", "-w", *self.extra_ldflags]
        if self.stamps:
            major, minor = self.version.lstrip("v").split(".")[:2]
            for pkg in self.stamps:
                flags += [
                    f"-X {pkg}.gitVersion={self.version}",
                    f"-X {pkg}.gitMajor={major}",
                    f"-X {pkg}.gitMinor={minor}",
                    f"-X {pkg}.gitTreeState=clean",
                    f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
                ]
        return " ".join(flags)


KUBERNETES_VERSION = "v1.34.4"

GROUPS: tuple[ComponentGroup, ...] = (
    ComponentGroup(
        group="kubernetes",
        version=KUBERNETES_VERSION,
        packages={
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
            "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        },
        stamps=("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"),
    ),
    ComponentGroup(
        group="etcd",
        version="v3.6.16",
        packages={"etcd": "edge-allocator.io/hack/devcluster/etcd"},
    ),
    ComponentGroup(
        group="kwok",
        version="v0.7.0",
        packages={"kwok": "sigs.k8s.io/kwok/cmd/kwok", "kwokctl": "sigs.k8s.io/kwok/cmd/kwokctl"},
    ),
    ComponentGroup(
        group="metrics-server",
        version="v0.9.0",
        packages={"metrics-server": "sigs.k8s.io/metrics-server/cmd/metrics-server"},
        stamps=("k8s.io/component-base/version",),
    ),
    ComponentGroup(
        group="helm",
        version="v3.21.4",
        packages={"helm": "helm.sh/helm/v3/cmd/helm"},
        extra_ldflags=("-X helm.sh/helm/v3/internal/version.version=v3.21.4",),
    ),
)

BINARIES: tuple[str, ...] = tuple(name for g in GROUPS for name in g.packages)

# The real node (``dev up --real-node``): built only when asked for. kubelet and kube-proxy come
# from the same release and staging replace set as the control plane (their own module, so the
# control plane's cache key does not change); the pod sandbox and CoreDNS are small modules.
NODE_GROUPS: tuple[ComponentGroup, ...] = (
    ComponentGroup(
        group="kubernetes-node",
        version=KUBERNETES_VERSION,
        packages={
            "kubelet": "k8s.io/kubernetes/cmd/kubelet",
            "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
        },
        stamps=("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"),
    ),
    ComponentGroup(
        group="pause",
        version="v1.0.0",
        packages={"pause": "edge-allocator.io/hack/devcluster/pause"},
    ),
    ComponentGroup(
        group="coredns",
        version="v1.14.7",
        packages={"coredns": "edge-allocator.io/hack/devcluster/coredns"},
        extra_ldflags=("-X github.com/coredns/coredns/coremain.GitCommit=v1.14.7",),
    ),
)

NODE_BINARIES: tuple[str, ...] = tuple(name for g in NODE_GROUPS for name in g.packages)
