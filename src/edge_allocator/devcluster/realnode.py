"""A real kubelet node next to the kwok fleet: real containers for what kwok can only fake.

kwok plays the edge fleet's kubelets; the product's own pods (the Helm chart's operator,
extender and kube-scheduler) need a node that runs containers, probes and Services for real. This
module runs one on the host, as local processes with pid files, all state under the cluster's
state directory:

- containerd (Debian) with runc and the CNI bridge plugin, cgroupfs driver and
  ``restrict_oom_score_adj`` (root here lacks CAP_SYS_RESOURCE; see the project's notes);
- kubelet and kube-proxy (iptables mode) built from the control plane's Kubernetes release;
- CoreDNS (built from its Go module) on the node's address, as the pods' cluster DNS;
- a pause image built locally, and images imported into containerd from OCI archives.

The node is labelled and tainted (``edge-allocator.io/real-node``), so only pods that select and
tolerate it land there: the edge workloads stay on the kwok nodes. Its pods run under their own
cgroup root and bridge, so ``stop`` (and a later ``start`` after a crash) removes containers,
mounts, network namespaces, cgroups, the bridge and the iptables rules it made, and stops the
processes by pid. One real node per host: kube-proxy's iptables chains are host-wide.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge_allocator.devcluster import paths
from edge_allocator.devcluster.components import KUBERNETES_VERSION
from edge_allocator.devcluster.prereqs import (
    NODE_TOOLS,
    PrerequisiteError,
    ensure_packages,
    require_root,
)
from edge_allocator.devcluster.processes import free_port, read_pid, terminate

NODE_NAME = "edge-allocator-real-0"
REAL_NODE_LABEL = "edge-allocator.io/real-node"
REAL_NODE_TAINT = f"{REAL_NODE_LABEL}=true:NoSchedule"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
BRIDGE = "ea-cni0"
CNI_NETWORK = "edge-allocator-realnode"
CGROUP_ROOT = "edge-allocator-realnode"
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "localhost/edge-allocator-pause:v1.0.0"
# The chart's kube-scheduler image, made from the control plane's own binary (set through values:
# scheduler.image.repository=localhost/kube-scheduler, scheduler.image.tag=<version>).
SCHEDULER_REPOSITORY = "localhost/kube-scheduler"
SCHEDULER_IMAGE = f"{SCHEDULER_REPOSITORY}:{KUBERNETES_VERSION}"
K8S_NAMESPACE = "k8s.io"  # containerd namespace of the CRI
OWNER_FILE = Path("/run/edge-allocator-realnode.owner")
CGROUP_FS = Path("/sys/fs/cgroup")
PROCESSES = ("containerd", "coredns", "kube-proxy", "kubelet")


class RealNodeError(RuntimeError):
    """The real node could not be started or stopped; the message says why."""


def node_ip() -> str:
    """The address of the interface with the default route (the host name resolves to lo)."""
    out = subprocess.run(
        ["ip", "-4", "route", "get", "1.1.1.1"], capture_output=True, text=True, check=False
    ).stdout
    m = re.search(r"\bsrc (\d+\.\d+\.\d+\.\d+)", out)
    if not m:
        raise RealNodeError(f"cannot find the host's address (ip route get: {out.strip()!r})")
    return m.group(1)


@dataclass
class RealNode:
    """One kubelet node, its runtime and its network, started and stopped as a unit."""

    state_dir: Path  # the cluster's state dir; the node lives in <state_dir>/realnode
    kubeconfig: Path  # admin kubeconfig of the cluster (127.0.0.1)
    ca_file: Path  # the cluster CA (kubelet client authentication)
    bin_dir: Path
    name: str = NODE_NAME
    log: Callable[[str], None] = field(
        default=lambda s: print(s, file=sys.stderr, flush=True), repr=False
    )

    # ---- paths -------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.state_dir / "realnode"

    @property
    def socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    def pid_file(self, proc: str) -> Path:
        return self.root / "pids" / f"{proc}.pid"

    def log_file(self, proc: str) -> Path:
        return self.root / "logs" / f"{proc}.log"

    # ---- public API --------------------------------------------------------------------
    @staticmethod
    def check_prerequisites(log: Callable[[str], None]) -> None:
        require_root("the real node")
        ensure_packages(NODE_TOOLS, "the real node", log)
        for path in (CGROUP_FS / "memory", CGROUP_FS / "cpu", Path("/proc/sys/net/ipv4")):
            if not path.exists():
                raise PrerequisiteError(f"the real node needs {path} (cgroups, networking)")

    def start(self, images: Iterable[Path] = ()) -> None:
        """Start (or keep) containerd, CoreDNS, kube-proxy and kubelet; import ``images``."""
        started = time.monotonic()
        self.check_prerequisites(self.log)
        self._claim_host()
        if not all(self._alive(p) for p in PROCESSES):
            # Partly running (a crash): clear it all, then start clean.
            if any(self._alive(p) for p in PROCESSES) or self.root.exists():
                self.log("[real-node] cleaning up a partial earlier run")
                self._stop_all()
                self._claim_host()
            self._prepare_host()
            self._write_configs()
            self._start_containerd()
            self.import_images([*self.node_images(), *images])
            self._start_coredns()
            self._start_kube_proxy()
            self._start_kubelet()
        else:
            self.import_images(images)
        self.wait_ready()
        self.log(f"[real-node] {self.name} Ready in {time.monotonic() - started:.0f}s")

    def stop(self) -> None:
        """Remove everything the node made; safe to call repeatedly and after a crash."""
        self._stop_all()

    def status(self) -> dict[str, Any]:
        return {p: self._alive(p) for p in PROCESSES}

    def import_images(self, archives: Iterable[Path]) -> None:
        """``ctr images import`` each OCI archive (skipped when the same archive was imported)."""
        for archive in archives:
            stamp = self.root / "images" / (archive.name + ".imported")
            mtime = str(archive.stat().st_mtime_ns)
            if stamp.exists() and stamp.read_text() == mtime:
                continue
            t0 = time.monotonic()
            self.log(f"[real-node] importing {archive.name} into containerd")
            self.ctr("images", "import", "--no-unpack=false", str(archive), timeout=900)
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(mtime)
            self.log(f"[real-node] imported {archive.name} in {time.monotonic() - t0:.0f}s")

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        cmd = ["ctr", "--address", str(self.socket), "--namespace", K8S_NAMESPACE, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise RealNodeError(f"ctr {' '.join(args)} failed: {proc.stderr.strip()[-1500:]}")
        return proc.stdout

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for p in PROCESSES:
                if not self._alive(p):
                    raise RealNodeError(f"{p} exited; see {self.log_file(p)}")
            out = self._kubectl("get", "node", self.name, "-o", "json")
            if out.returncode == 0:
                node = json.loads(out.stdout)
                conds = {c["type"]: c for c in node.get("status", {}).get("conditions", [])}
                ready = conds.get("Ready", {})
                if ready.get("status") == "True":
                    return
                last = ready.get("message", "")
            time.sleep(2)
        raise RealNodeError(
            f"node {self.name} not Ready after {timeout:.0f}s ({last}); see "
            f"{self.log_file('kubelet')}"
        )

    def node_images(self) -> list[Path]:
        """The pause and kube-scheduler images (scratch + our binaries), cached per binary."""
        out = []
        for image, binary, dest in (
            (PAUSE_IMAGE, "pause", "/pause"),
            (SCHEDULER_IMAGE, "kube-scheduler", "/usr/local/bin/kube-scheduler"),
        ):
            exe = (self.bin_dir / binary).resolve()
            archive = paths.user_image_cache() / f"{binary}-{exe.parent.name}.oci.tar"
            if not archive.exists():
                self.log(f"[real-node] building {image} (scratch + {binary})")
                scratch_image(image, {exe: dest}, [dest], archive, user="65535")
            out.append(archive)
        return out

    # ---- start -------------------------------------------------------------------------
    def _claim_host(self) -> None:
        """One real node per host; a dead owner's claim is taken over (after its cleanup)."""
        if OWNER_FILE.exists():
            owner = Path(OWNER_FILE.read_text().strip())
            if owner != self.root and (owner / "pids").is_dir():
                other = RealNode(owner.parent, self.kubeconfig, self.ca_file, self.bin_dir)
                if any(other._alive(p) for p in PROCESSES):
                    raise RealNodeError(
                        f"another dev cluster's real node runs on this host ({owner}); stop it "
                        f"first (EDGE_ALLOCATOR_DEVCLUSTER_DIR={owner.parent} edge-allocator "
                        f"dev down)"
                    )
                other._stop_all()
        OWNER_FILE.write_text(str(self.root))

    def _prepare_host(self) -> None:
        for d in ("pids", "logs", "images", "cni/net.d", "cni/ipam", "kubelet", "containerd"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        # kubelet wants its cgroup root to exist in every hierarchy (cgroup v1 here).
        for hierarchy in CGROUP_FS.iterdir():
            if hierarchy.is_symlink() or not (hierarchy / "cgroup.procs").exists():
                continue
            cg = hierarchy / CGROUP_ROOT
            cg.mkdir(exist_ok=True)
            for knob in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset starts empty
                if (cg / knob).exists() and not _read(cg / knob).strip():
                    (cg / knob).write_text(_read(hierarchy / knob).strip() or "0")
        fwd = Path("/proc/sys/net/ipv4/ip_forward")
        saved = self.root / "ip_forward.orig"
        if not saved.exists():
            saved.write_text(fwd.read_text().strip())
        fwd.write_text("1")

    def _write_configs(self) -> None:
        ip = node_ip()
        c = self.root / "containerd"
        (c / "config.toml").write_text(
            _containerd_config(
                root=c / "root", state=c / "state", socket=self.socket,
                cni_conf=self.root / "cni" / "net.d",
            )
        )  # fmt: skip
        (self.root / "cni" / "net.d" / "10-edge-allocator.conflist").write_text(
            json.dumps(_cni_config(self.root / "cni" / "ipam"), indent=2)
        )
        kubelet = self.root / "kubelet"
        (kubelet / "config.yaml").write_text(
            yaml.safe_dump(
                _kubelet_config(
                    ip=ip, ca_file=self.ca_file, socket=self.socket,
                    healthz_port=free_port(), pod_logs=self.root / "pod-logs",
                )
            )
        )  # fmt: skip
        kp = self.root / "kube-proxy"
        kp.mkdir(exist_ok=True)
        (kp / "config.yaml").write_text(
            yaml.safe_dump(_kube_proxy_config(self.kubeconfig, self.name, free_port(), free_port()))
        )
        dns = self.root / "coredns"
        dns.mkdir(exist_ok=True)
        (dns / "Corefile").write_text(_corefile(ip, self.kubeconfig, free_port(), free_port()))
        (self.root / "node-ip").write_text(ip)

    def _spawn(self, proc: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
        log = self.log_file(proc).open("ab")
        p = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.pid_file(proc).write_text(str(p.pid))
        self.log(f"[real-node] {proc} started (pid {p.pid}); log {self.log_file(proc)}")
        return p.pid

    def _start_containerd(self) -> None:
        self._spawn(
            "containerd",
            ["containerd", "--config", str(self.root / "containerd" / "config.toml")],
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.socket.exists() and self.ctr("version", check=False):
                return
            if not self._alive("containerd"):
                break
            time.sleep(0.5)
        raise RealNodeError(f"containerd did not start; see {self.log_file('containerd')}")

    def _start_coredns(self) -> None:
        self._spawn(
            "coredns",
            [str(self.bin_dir / "coredns"), "-conf", str(self.root / "coredns" / "Corefile")],
        )

    def _start_kube_proxy(self) -> None:
        self._spawn(
            "kube-proxy",
            [
                str(self.bin_dir / "kube-proxy"),
                f"--config={self.root / 'kube-proxy' / 'config.yaml'}",
                "--v=1",
            ],
        )

    def _start_kubelet(self) -> None:
        kubelet = self.root / "kubelet"
        self._spawn(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={kubelet / 'config.yaml'}",
                f"--kubeconfig={self.kubeconfig}",
                f"--root-dir={kubelet / 'root'}",
                f"--cert-dir={kubelet / 'pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={(self.root / 'node-ip').read_text()}",
                f"--node-labels={REAL_NODE_LABEL}=true",
                "--v=1",
            ],
        )

    # ---- stop --------------------------------------------------------------------------
    def _stop_all(self) -> None:
        # kubelet first, so it restarts nothing; then every container, then the rest. Each step
        # runs even when an earlier one failed: a half-cleaned host is the worst outcome.
        netns: list[str] = []

        def remove_containers() -> None:
            netns.extend(self._remove_containers())

        def remove_netns() -> None:
            for ns in {*netns, *_pod_netns()}:
                real = Path(os.path.realpath(ns))
                self._unmount_under(real)
                real.unlink(missing_ok=True)

        def restore_forwarding() -> None:
            saved = self.root / "ip_forward.orig"
            if saved.exists():
                Path("/proc/sys/net/ipv4/ip_forward").write_text(saved.read_text())

        steps: list[tuple[str, Callable[[], None]]] = [
            *(
                (f"stop {p}", lambda p=p: self._stop(p))
                for p in ("kubelet", "kube-proxy", "coredns")
            ),
            ("remove containers", remove_containers),
            ("stop containerd", lambda: self._stop("containerd")),
            ("stop leftover processes", self._stop_leftovers),
            ("remove kube-proxy rules", self._cleanup_kube_proxy_rules),
            ("unmount", lambda: self._unmount_under(self.root)),
            ("remove network namespaces", remove_netns),
            ("remove cgroups", self._remove_cgroups),
            ("remove bridge and masquerade rules", self._cleanup_network),
            ("remove pod log links", self._remove_pod_log_links),
            ("restore ip_forward", restore_forwarding),
            ("remove state", lambda: shutil.rmtree(self.root, ignore_errors=True)),
        ]
        failed = []
        for what, step in steps:
            try:
                step()
            except (OSError, subprocess.SubprocessError, RealNodeError) as e:
                failed.append(f"{what}: {e}")
        if OWNER_FILE.exists() and OWNER_FILE.read_text().strip() == str(self.root):
            OWNER_FILE.unlink()
        if failed:
            raise RealNodeError("cleaning up the real node failed: " + "; ".join(failed))
        self.log("[real-node] stopped and cleaned up")

    def _stop(self, proc: str) -> None:
        pid = read_pid(self.pid_file(proc))
        if pid and self._alive(proc):
            terminate(pid)
        self.pid_file(proc).unlink(missing_ok=True)

    def _remove_containers(self) -> list[str]:
        """Kill and delete every container of the node; returns their network namespaces."""
        if not (self.socket.exists() and self._alive("containerd")):
            return []
        netns: set[str] = set()
        ids = self.ctr("containers", "ls", "-q", check=False).split()
        for cid in ids:
            with contextlib.suppress(json.JSONDecodeError, RealNodeError):
                info = json.loads(self.ctr("containers", "info", cid))
                for ns in info.get("Spec", {}).get("linux", {}).get("namespaces", []):
                    if ns.get("type") == "network" and ns.get("path"):
                        netns.add(ns["path"])
        for cid in ids:
            self.ctr("tasks", "kill", "--signal", "SIGKILL", cid, check=False)
        for cid in ids:
            for _ in range(20):
                out = subprocess.run(
                    ["ctr", "--address", str(self.socket), "-n", K8S_NAMESPACE,
                     "tasks", "delete", "--force", cid],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if out.returncode == 0 or "not found" in out.stderr:
                    break
                time.sleep(0.25)
            self.ctr("containers", "delete", cid, check=False)
        if ids:
            self.log(f"[real-node] removed {len(ids)} containers")
        return sorted(netns)

    def _stop_leftovers(self) -> None:
        for pid in self._leftover_pids():
            terminate(pid)

    def _leftover_pids(self) -> list[int]:
        """Processes still tied to this node: its daemons and shims, found via /proc.

        Only our programs count (a shell or test whose command line names the state directory
        is not ours to stop), and pod processes left in the node's cgroups after a crash.
        """
        markers = [str(self.root).encode(), str(self.socket).encode()]
        programs = {*PROCESSES, "containerd-shim-runc-v2", "containerd-shim"}
        found: list[int] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if Path(argv[0].decode(errors="replace")).name not in programs:
                continue
            if any(m in arg for m in markers for arg in argv[1:]):
                found.append(int(entry.name))
        for procs in CGROUP_FS.glob(f"*/{CGROUP_ROOT}/**/cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                found += [int(x) for x in procs.read_text().split()]
        return sorted(set(found))

    def _cleanup_kube_proxy_rules(self) -> None:
        binary = self.bin_dir / "kube-proxy"
        if binary.exists():
            subprocess.run([str(binary), "--cleanup"], capture_output=True, timeout=60, check=False)
        # What kube-proxy --cleanup leaves: kubelet's own chains (KUBE-FIREWALL, canaries). No
        # other KUBE-* chains can exist here: one real node per host, and kwok makes none.
        for tool in ("iptables", "ip6tables"):
            for table in ("filter", "nat", "mangle"):
                _drop_chains(tool, table, lambda chain: chain.startswith("KUBE-"))

    @staticmethod
    def _unmount_under(prefix: Path) -> None:
        """Unmount every mount at or below ``prefix``, deepest first."""
        text = Path("/proc/self/mountinfo").read_text()
        points = []
        for line in text.splitlines():
            mp = line.split()[4].replace("\\040", " ")
            if mp == str(prefix) or mp.startswith(str(prefix) + "/"):
                points.append(mp)
        for mp in sorted(set(points), key=len, reverse=True):
            if subprocess.run(["umount", mp], capture_output=True, check=False).returncode:
                subprocess.run(["umount", "-l", mp], capture_output=True, check=False)

    @staticmethod
    def _remove_cgroups() -> None:
        for root in CGROUP_FS.glob(f"*/{CGROUP_ROOT}"):
            dirs = sorted(
                (p for p in root.rglob("*") if p.is_dir()),
                key=lambda p: len(p.parts),
                reverse=True,
            )
            for d in [*dirs, root]:
                for _ in range(10):
                    try:
                        d.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        for pid_text in _read(d / "cgroup.procs").split():
                            with contextlib.suppress(ProcessLookupError, ValueError):
                                os.kill(int(pid_text), signal.SIGKILL)
                        time.sleep(0.3)

    @staticmethod
    def _cleanup_network() -> None:
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)
        # The bridge plugin's masquerade rules: one chain per pod, tagged with our network name.
        rules = subprocess.run(
            ["iptables", "-t", "nat", "-S", "POSTROUTING"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        chains = set()
        for rule in rules.splitlines():
            if f'name: \\"{CNI_NETWORK}\\"' in rule or f'name: "{CNI_NETWORK}"' in rule:
                args = rule.split()[1:]  # drop "-A"
                subprocess.run(
                    ["iptables", "-t", "nat", "-D", *_unquote(args)],
                    capture_output=True, check=False,
                )  # fmt: skip
                m = re.search(r"-j (CNI-[0-9a-f]+)", rule)
                if m:
                    chains.add(m.group(1))
        for chain in chains:
            subprocess.run(["iptables", "-t", "nat", "-F", chain], capture_output=True, check=False)
            subprocess.run(["iptables", "-t", "nat", "-X", chain], capture_output=True, check=False)

    def _remove_pod_log_links(self) -> None:
        links = Path("/var/log/containers")
        if links.is_dir():
            for link in links.iterdir():
                with contextlib.suppress(OSError):
                    if link.is_symlink() and str(os.readlink(link)).startswith(
                        str(self.root / "pod-logs")
                    ):
                        link.unlink()

    # ---- helpers -----------------------------------------------------------------------
    def _alive(self, proc: str) -> bool:
        pid = read_pid(self.pid_file(proc))
        if pid <= 0:
            return False
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"

    def _kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip


def _drop_chains(tool: str, table: str, ours: Callable[[str], bool]) -> None:
    """Delete the jumps into, then the rules and chains of, every chain ``ours`` accepts."""
    rules = subprocess.run(
        [tool, "-t", table, "-S"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    chains = [r.split()[1] for r in rules if r.startswith("-N ") and ours(r.split()[1])]
    for rule in rules:
        parts = rule.split()
        if parts[:1] == ["-A"] and not ours(parts[1]) and "-j" in parts:
            target = parts[parts.index("-j") + 1]
            if ours(target):
                argv = _unquote(parts[1:])
                subprocess.run([tool, "-t", table, "-D", *argv], capture_output=True, check=False)
    for chain in chains:
        subprocess.run([tool, "-t", table, "-F", chain], capture_output=True, check=False)
    for chain in chains:
        subprocess.run([tool, "-t", table, "-X", chain], capture_output=True, check=False)


def _pod_netns() -> list[str]:
    """Network namespaces of pods on the node's pod network (after a crash lost the list)."""
    net = ipaddress.ip_network(POD_CIDR)
    found = []
    for ns in sorted(Path("/run/netns").glob("cni-*")):
        out = subprocess.run(
            ["ip", "-n", ns.name, "-4", "-o", "addr", "show"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        for m in re.finditer(r"inet (\d+\.\d+\.\d+\.\d+)/", out):
            if ipaddress.ip_address(m.group(1)) in net:
                found.append(str(ns))
                break
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _unquote(args: list[str]) -> list[str]:
    """``iptables -S`` output back into argv (its comments are double-quoted)."""
    import shlex

    return shlex.split(" ".join(args))


def scratch_image(
    name: str, files: dict[Path, str], entrypoint: list[str], archive: Path, user: str = ""
) -> None:
    """A ``FROM scratch`` image of static binaries, saved as an OCI archive (buildah)."""

    def run(*cmd: str) -> str:
        p = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise RealNodeError(f"{' '.join(cmd[:3])} failed: {p.stderr.strip()[-1500:]}")
        return p.stdout.strip()

    ctr = run("buildah", "from", "scratch")
    try:
        for src, dest in files.items():
            run("buildah", "copy", "--chmod", "0755", ctr, str(src), dest)
        cfg = ["buildah", "config", "--entrypoint", json.dumps(entrypoint), "--cmd", ""]
        cfg += ["--env", "PATH=/usr/local/bin:/usr/bin:/bin"]
        if user:
            cfg += ["--user", user]
        run(*cfg, ctr)
        run("buildah", "commit", "--rm", ctr, name)
    except BaseException:
        subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)
        raise
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    run("buildah", "push", name, f"oci-archive:{tmp}:{name}")
    tmp.rename(archive)


# ---- configuration documents ---------------------------------------------------------------
def _containerd_config(root: Path, state: Path, socket: Path, cni_conf: Path) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below ours.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{cni_conf}"
  max_conf_num = 1
"""


def _cni_config(ipam_dir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def _kubelet_config(
    ip: str, ca_file: Path, socket: Path, healthz_port: int, pod_logs: Path
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{CGROUP_ROOT}",
        "failCgroupV1": False,  # the host has cgroup v1 controllers
        "containerRuntimeEndpoint": f"unix://{socket}",
        "address": ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [ip],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "/etc/resolv.conf",
        "podLogsDir": str(pod_logs),
        "registerWithTaints": [{"key": REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}],
        "maxPods": 40,
        "failSwapOn": False,
        "serializeImagePulls": False,
        # Locally imported images cannot be pulled again: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "2%",
            "imagefs.available": "2%",
        },
        "containerLogMaxSize": "5Mi",
        "containerLogMaxFiles": 2,
    }


def _kube_proxy_config(
    kubeconfig: Path, node: str, healthz_port: int, metrics_port: int
) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "hostnameOverride": node,
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # Leave the host's conntrack sysctls alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"syncPeriod": "10s", "minSyncPeriod": "1s"},
    }


def _corefile(ip: str, kubeconfig: Path, health_port: int, ready_port: int) -> str:
    return f"""\
.:53 {{
    bind {ip}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
    cache 30
}}
"""
