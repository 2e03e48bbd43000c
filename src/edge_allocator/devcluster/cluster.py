"""Start, stop and inspect the dev cluster: kwokctl's binary runtime on 127.0.0.1.

kwokctl runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, the kwok controller
(simulated kubelets) and metrics-server as local processes from the binaries we build. This
module adds what a product needs on top: a fixed, checked API port; recovery from a crashed
earlier run; the edge fleet; and extra kube-scheduler processes with configurations of their own
(how the ``edge-allocator`` profile and its extender plug in without editing this code).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge_allocator.devcluster import paths
from edge_allocator.devcluster.build import ensure_binaries
from edge_allocator.devcluster.fleet import FleetSpec, fleet_manifest
from edge_allocator.devcluster.kwokconfig import kwokctl_documents, real_node_patches
from edge_allocator.devcluster.processes import (
    HOST,
    free_port,
    kill_pid_file,
    port_is_free,
    read_pid,
    terminate,
)
from edge_allocator.devcluster.realnode import (
    KUBERNETES_SERVICE_IP,
    SERVICE_CIDR,
    RealNode,
    node_ip,
)

CLUSTER_NAME = "edge-allocator"
DEFAULT_API_PORT = 36443


class DevClusterError(RuntimeError):
    """The dev cluster could not be started or stopped; the message says why."""


@dataclass
class DevCluster:
    """The local control plane plus a simulated edge fleet, all bound to 127.0.0.1."""

    fleet: FleetSpec = field(default_factory=FleetSpec)
    api_port: int = DEFAULT_API_PORT  # 0: any free port
    name: str = CLUSTER_NAME
    state_root: Path | None = None  # default: .cache/devcluster of the checkout
    real_node: bool = False  # also run a real kubelet node (root; see realnode.py)
    log: Callable[[str], None] = field(
        default=lambda s: print(s, file=sys.stderr, flush=True), repr=False
    )

    # ---- paths -------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.state_root or paths.state_dir()

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def kwok_workdir(self) -> Path:
        return self.state_dir / "kwok"

    @property
    def cluster_dir(self) -> Path:
        return self.kwok_workdir / "clusters" / self.name

    @property
    def schedulers_dir(self) -> Path:
        return self.state_dir / "schedulers"

    def binary(self, name: str) -> Path:
        return paths.bin_dir() / name

    # ---- public API --------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down across processes (tests, make, a second terminal)."""
        lock_path = self.state_dir.with_name(self.state_dir.name + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @property
    def real_node_marker(self) -> Path:
        return self.state_dir / "real-node"

    def realnode(self) -> RealNode:
        return RealNode(
            state_dir=self.state_dir,
            kubeconfig=self.kubeconfig,
            ca_file=self.cluster_dir / "pki" / "ca.crt",
            bin_dir=paths.bin_dir(),
            log=self.log,
        )

    def up(
        self, scheduler_configs: Sequence[tuple[str, Path]] = (), images: Sequence[Path] = ()
    ) -> None:
        """Start the cluster (or reuse a healthy one), create the fleet, wait for Ready nodes.

        With ``real_node``, also the real kubelet node, with ``images`` (OCI archives) imported
        into its containerd.
        """
        if self.real_node:
            RealNode.check_prerequisites(self.log)
        ensure_binaries(self.log, node=self.real_node)
        with self._locked():
            self._up(scheduler_configs, images)

    def _up(self, scheduler_configs: Sequence[tuple[str, Path]], images: Sequence[Path]) -> None:
        started = time.monotonic()
        if self._healthy_or_recovering():
            self.log(f"[dev] cluster already running at https://{HOST}:{self._running_port()}")
            if self.real_node and not self.real_node_marker.exists():
                raise DevClusterError(
                    f"the cluster in {self.state_dir} was started without --real-node (its API "
                    f"server listens on {HOST} only); stop it first (`edge-allocator dev down`)"
                )
        else:
            self._cleanup_stale()
            if self.api_port == 0:
                self.api_port = free_port()
            self._check_port_free(self.api_port)
            self._create()
        self.apply_fleet(self.fleet)
        if self.real_node:
            self.realnode().start(images)
        for name, cfg in scheduler_configs:
            self.start_scheduler(name, cfg)
        self.log(f"[dev] ready in {time.monotonic() - started:.0f}s; KUBECONFIG={self.kubeconfig}")

    def down(self) -> None:
        """Stop every process of the cluster and remove its state; safe to call repeatedly."""
        with self._locked():
            self._down()

    def _down(self) -> None:
        self._stop_schedulers()
        if (self.state_dir / "realnode").exists():
            self.realnode().stop()
        pid_files = list((self.cluster_dir / "pids").glob("*.pid"))
        pids = [read_pid(p) for p in pid_files]
        if self.cluster_dir.exists() and self.binary("kwokctl").exists():
            self._kwokctl("delete", "cluster", check=False)
        # kwokctl signals and forgets; make sure each component is really gone (ports freed),
        # including processes whose pid files a crashed run lost.
        for pid in {*pids, *self._component_pids()}:
            terminate(pid)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.log("[dev] cluster stopped")

    def status(self) -> dict[str, Any]:
        healthy = self.is_healthy()
        info: dict[str, Any] = {
            "running": healthy,
            "kubeconfig": str(self.kubeconfig),
            "schedulers": sorted(p.stem for p in self.schedulers_dir.glob("*.pid")),
        }
        if healthy:
            info["server"] = f"https://{HOST}:{self._running_port()}"
            out = self.kubectl("get", "nodes", "-o", "json", check=False)
            if out.returncode == 0:
                nodes = json.loads(out.stdout)["items"]
                info["nodes"] = len(nodes)
                info["ready_nodes"] = sum(1 for n in nodes if _is_ready(n))
            version = self.kubectl("version", "-o", "json", check=False)
            if version.returncode == 0:
                info["version"] = json.loads(version.stdout)["serverVersion"]["gitVersion"]
        return info

    def is_healthy(self) -> bool:
        """True when the kubeconfig exists and the API server answers /readyz."""
        if not self.kubeconfig.exists():
            return False
        try:
            port = self._running_port()
        except (OSError, KeyError, ValueError, TypeError):
            return False
        ctx = ssl.create_default_context(cafile=str(self.cluster_dir / "pki" / "ca.crt"))
        try:
            with urllib.request.urlopen(
                f"https://{HOST}:{port}/readyz", context=ctx, timeout=5
            ) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.binary("kubectl")), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise DevClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def apply_fleet(self, fleet: FleetSpec, timeout: float = 300) -> None:
        """Create (or update) the fleet's nodes and wait until every one of them is Ready."""
        self.log(f"[dev] applying {fleet.nodes} edge nodes over {len(fleet.sites)} sites")
        # force-conflicts: the TTL controller takes over the ttl annotation on big clusters.
        self.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", input=fleet_manifest(fleet)
        )
        names = [n for n, _, _ in fleet.layout()]
        deadline = time.monotonic() + timeout
        while True:
            out = self.kubectl("get", "nodes", "-o", "json")
            nodes = {n["metadata"]["name"]: n for n in json.loads(out.stdout)["items"]}
            waiting = [n for n in names if n not in nodes or not _is_ready(nodes[n])]
            if not waiting:
                self.log(f"[dev] {len(names)} nodes Ready")
                return
            if time.monotonic() > deadline:
                raise DevClusterError(
                    f"{len(waiting)} nodes not Ready after {timeout:.0f}s, e.g. {waiting[:3]}; "
                    f"see {self.cluster_dir / 'logs' / 'kwok-controller.log'}"
                )
            time.sleep(1)

    def start_scheduler(self, name: str, config: Path) -> int:
        """Run one more kube-scheduler with its own KubeSchedulerConfiguration; returns its pid.

        The config's ``clientConnection.kubeconfig`` is pointed at this cluster, leader election
        is switched off unless the file sets it (a second scheduler must not fight the default
        one for its lease), and it serves health on a free port of 127.0.0.1.
        """
        self.stop_scheduler(name)
        self.schedulers_dir.mkdir(parents=True, exist_ok=True)
        doc = yaml.safe_load(Path(config).read_text())
        if not isinstance(doc, dict) or doc.get("kind") != "KubeSchedulerConfiguration":
            raise DevClusterError(f"{config}: not a KubeSchedulerConfiguration")
        doc.setdefault("clientConnection", {})["kubeconfig"] = str(self.kubeconfig)
        doc.setdefault("leaderElection", {"leaderElect": False})
        rendered = self.schedulers_dir / f"{name}.yaml"
        rendered.write_text(yaml.safe_dump(doc))
        port = free_port()
        log_file = (self.schedulers_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [
                str(self.binary("kube-scheduler")),
                f"--config={rendered}",
                f"--bind-address={HOST}",
                f"--secure-port={port}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        (self.schedulers_dir / f"{name}.pid").write_text(str(proc.pid))
        self._wait_https_ok(
            port, "/healthz", f"scheduler {name}", self.schedulers_dir / f"{name}.log"
        )
        self.log(f"[dev] scheduler {name!r} running (pid {proc.pid}, health port {port})")
        return proc.pid

    def stop_scheduler(self, name: str) -> None:
        pid_file = self.schedulers_dir / f"{name}.pid"
        if pid_file.exists():
            kill_pid_file(pid_file)

    # ---- internals ---------------------------------------------------------------------
    def _running_port(self) -> int:
        cfg = yaml.safe_load(self.kubeconfig.read_text())
        server: str = cfg["clusters"][0]["cluster"]["server"]
        return int(server.rsplit(":", 1)[1])

    def _kwokctl(self, *args: str, check: bool = True, timeout: float = 300) -> None:
        env = {**os.environ, "KWOK_WORKDIR": str(self.kwok_workdir)}
        cmd = [
            str(self.binary("kwokctl")),
            "--name", self.name,
            *args,
            # kwokctl adds a context to this file; keep it away from ~/.kube/config.
            "--kubeconfig", str(self.state_dir / "kwokctl-contexts.yaml"),
        ]  # fmt: skip
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise DevClusterError(
                f"kwokctl {' '.join(args)} failed (exit {proc.returncode}):\n"
                f"{proc.stderr.strip()[-3000:]}\nlogs: {self.cluster_dir / 'logs'}"
            )

    def _create(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "kwokctl.yaml"
        extra = (
            real_node_patches(
                node_ip(), SERVICE_CIDR, KUBERNETES_SERVICE_IP, self.cluster_dir / "pki"
            )
            if self.real_node
            else None
        )
        docs = kwokctl_documents(self.api_port, paths.bin_dir(), extra)
        config.write_text("\n---\n".join(yaml.safe_dump(d) for d in docs))
        self.log(f"[dev] starting control plane on {HOST}:{self.api_port} (kwokctl, binaries)")
        self._kwokctl("create", "cluster", "--config", str(config), "--wait", "3m", timeout=400)
        shutil.copyfile(self.cluster_dir / "kubeconfig.yaml", self.kubeconfig)
        if self.real_node:
            self.real_node_marker.write_text("1")
        if not self.is_healthy():
            raise DevClusterError(
                f"the API server did not become ready; see {self.cluster_dir / 'logs'}"
            )

    def _cleanup_stale(self) -> None:
        """Remove what a crashed or half-stopped earlier run left: processes, pid files, data."""
        if not self.state_dir.exists() and not self._component_pids():
            return
        self.log("[dev] cleaning up a stale earlier run")
        self._down()

    def _component_pids(self) -> list[int]:
        """Live processes started from this cluster's directory (found via /proc)."""
        marker = (str(self.cluster_dir) + "/").encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if marker in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def _healthy_or_recovering(self, patience: float = 60) -> bool:
        """Healthy now, or its processes are alive and it answers within ``patience`` seconds.

        A busy API server can miss one /readyz; tearing down a live cluster for that would
        pull it from under every user, so only a cluster with no live process is stale.
        """
        if self.is_healthy():
            return True
        if not self.kubeconfig.exists() or not self._component_pids():
            return False
        self.log("[dev] cluster processes are alive but not ready; waiting for them")
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            if self.is_healthy():
                return True
            time.sleep(2)
        return False

    def _stop_schedulers(self) -> None:
        for pid_file in self.schedulers_dir.glob("*.pid"):
            kill_pid_file(pid_file)

    def _check_port_free(self, port: int) -> None:
        # As the API server binds (SO_REUSEADDR): TIME_WAIT leftovers do not count as in use.
        if not port_is_free(port):
            raise DevClusterError(
                f"port {port} on {HOST} is already in use; stop whatever listens there or "
                f"choose another with --port"
            )

    def _wait_https_ok(self, port: int, path: str, what: str, log: Path) -> None:
        ctx = ssl._create_unverified_context()  # the component's self-signed serving cert
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"https://{HOST}:{port}{path}", context=ctx, timeout=2
                ) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.5)
        raise DevClusterError(f"{what} did not become healthy in 60 s; see {log}")


def _is_ready(node: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in node.get("status", {}).get("conditions", [])
    )
