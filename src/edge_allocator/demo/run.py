"""The demo's steps, in order, each bounded in time and explained when it fails.

``Demo(settings).up()`` brings everything up and returns what it printed; ``down()`` stops the
processes (and the dev cluster, when the demo started it). With ``settings.cluster`` set (the
test suite's cluster), the demo leaves the cluster and its fleet alone, watches only its own
namespace, and cleans up only what it created.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge_allocator.cluster.annotations import SCHEDULER_NAME
from edge_allocator.demo import manifests, processes
from edge_allocator.demo.summary import summarize
from edge_allocator.devcluster import DevCluster, FleetSpec, paths
from edge_allocator.devcluster.cluster import CLUSTER_NAME, DEFAULT_API_PORT
from edge_allocator.devcluster.processes import free_port

HOST = "127.0.0.1"
CRDS = ("edgetasks.edge-allocator.io", "edgenetworks.edge-allocator.io")
# How long to wait for the extender's decision record to reach a bound task's status before
# printing the task without one (the record is written off the scheduling path).
RECORD_GRACE_S = 30.0


class DemoError(RuntimeError):
    """A demo step failed; the message says which, why, and where the logs are."""


@dataclass
class DemoSettings:
    """What the demo runs and where.

    Attributes:
        nodes, sites: the simulated fleet (ignored when ``cluster`` is given).
        namespace: where the EdgeTasks go.
        burst: how many small inference tasks to add to the examples.
        policy: the extender's initial policy (``auto``: the shipped model if there is one).
        state_dir: pid files, logs and the state file of the demo's processes.
        api_port, cluster_state_root, cluster_name: which dev cluster (a second one can run
            beside the default with its own port, state directory and name).
        cluster: an already-running cluster to use (and leave running); None starts the dev
            cluster with the demo fleet.
        timeout_s: how long to wait for every task to be placed and explained.
    """

    nodes: int = 20
    sites: tuple[str, ...] = manifests.SITES
    namespace: str = "demo"
    burst: int = 8
    policy: str = "auto"
    state_dir: Path = field(default_factory=lambda: paths.cache_dir() / "demo")
    api_port: int = DEFAULT_API_PORT
    cluster_state_root: Path | None = None  # default: the dev cluster's .cache/devcluster
    cluster_name: str = CLUSTER_NAME
    cluster: DevCluster | None = None
    network_name: str = "demo-fleet"
    timeout_s: float = 150.0
    log: Callable[[str], None] = field(default=lambda s: print(s, flush=True), repr=False)


@dataclass
class DemoResult:
    table: str
    summary: str
    dashboard_url: str
    extender_url: str
    seconds_to_placements: float
    tasks: list[dict[str, Any]]


class Demo:
    def __init__(self, settings: DemoSettings) -> None:
        self.s = settings
        self.owns_cluster = settings.cluster is None
        self.cluster = settings.cluster or DevCluster(
            fleet=FleetSpec(nodes=settings.nodes, sites=settings.sites),
            api_port=settings.api_port,
            name=settings.cluster_name,
            state_root=settings.cluster_state_root,
        )
        self.state_file = settings.state_dir / "demo.json"

    # ---- up ------------------------------------------------------------------------------
    def up(self) -> DemoResult:
        started = time.monotonic()
        s = self.s
        s.state_dir.mkdir(parents=True, exist_ok=True)
        if self.owns_cluster:
            self._step("dev cluster", self.cluster.up)
        sites = self._fleet_sites()
        self._step("CRDs", self._apply_crds)
        network = manifests.edge_network(s.network_name, sites)
        self._apply([network])
        extender_port = free_port()
        extender_url = f"http://{HOST}:{extender_port}"
        self._step("extender", lambda: self._start_extender(extender_port))
        self._step("scheduler", lambda: self._start_scheduler(extender_url))
        self._step("operator", lambda: self._start_operator(extender_url))
        self._save({"extender_url": extender_url})
        dashboard_url = self._step("dashboard", lambda: self._dashboard(extender_url))
        self._save({"extender_url": extender_url, "dashboard_url": dashboard_url})

        s.log(f"[demo] applying the examples and {s.burst} inference tasks in namespace "
              f"{s.namespace!r}")  # fmt: skip
        self.cluster.kubectl("create", "namespace", s.namespace, check=False)
        nodes = json.loads(self.cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        node_names = [n["metadata"]["name"] for n in nodes]
        tasks = manifests.example_tasks(paths.repo_root() / "examples", sites, node_names)
        tasks += manifests.burst(s.burst, sites)
        for t in tasks:
            t["metadata"]["namespace"] = s.namespace
        applied_at = time.monotonic()
        self._apply(tasks)
        placed = self._wait_placed(len(tasks))
        seconds = time.monotonic() - started
        table = self.cluster.kubectl("get", "et", "-n", s.namespace, "-o", "wide").stdout
        summary = summarize(placed, len(node_names), time.monotonic() - applied_at)
        s.log("")
        s.log(table.rstrip())
        s.log("")
        s.log(summary)
        s.log("")
        s.log(f"Dashboard: {dashboard_url}    (placements printed {seconds:.0f} s after start)")
        s.log(f"KUBECONFIG={self.cluster.kubeconfig}    stop everything: make demo-down")
        return DemoResult(table, summary, dashboard_url, extender_url, seconds, placed)

    def _step(self, what: str, fn: Callable[[], Any]) -> Any:
        t0 = time.monotonic()
        self.s.log(f"[demo] {what} ...")
        try:
            out = fn()
        except DemoError:
            raise
        except Exception as exc:
            raise DemoError(f"{what}: {exc}") from exc
        self.s.log(f"[demo] {what} ready ({time.monotonic() - t0:.1f} s)")
        return out

    def _fleet_sites(self) -> tuple[str, ...]:
        if self.owns_cluster:
            return self.s.sites
        nodes = json.loads(self.cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        zones = {n["metadata"]["labels"].get("topology.kubernetes.io/zone") for n in nodes}
        # Only the demo's own sites: a shared cluster may hold other tests' odd sites.
        present = tuple(site for site in self.s.sites if site in zones)
        if not present:
            raise DemoError(f"none of the sites {list(self.s.sites)} has a node in this cluster")
        return present

    def _apply(self, objects: list[dict[str, Any]]) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=body)

    def _apply_crds(self) -> None:
        crd_dir = paths.repo_root() / "crds"
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_dir))
        self.cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            *[f"crd/{c}" for c in CRDS],
        )  # fmt: skip

    def _python(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "edge_allocator", *args]

    def _start_extender(self, port: int) -> None:
        cmd = self._python(
            "extender", "--host", HOST, "--port", str(port), "--policy", self.s.policy,
            "--kubeconfig", str(self.cluster.kubeconfig), "--metrics-interval", "5",
        )  # fmt: skip
        processes.start("extender", cmd, self.s.state_dir, env={"OMP_NUM_THREADS": "1"})
        processes.wait_http(f"http://{HOST}:{port}/readyz", "extender", self.s.state_dir)

    def _start_scheduler(self, extender_url: str) -> None:
        source = paths.repo_root() / "deploy" / "scheduler" / "kube-scheduler-config.yaml"
        config = yaml.safe_load(source.read_text())
        for ext in config.get("extenders", []):
            ext["urlPrefix"] = extender_url
            ext["enableHTTPS"] = False
        config["leaderElection"] = {"leaderElect": False}  # one local instance, start at once
        rendered = self.s.state_dir / "kube-scheduler-config.yaml"
        rendered.write_text(yaml.safe_dump(config))
        self.cluster.start_scheduler(SCHEDULER_NAME, rendered)

    def _start_operator(self, extender_url: str) -> None:
        port = free_port()
        cmd = self._python(
            "operator", "--kubeconfig", str(self.cluster.kubeconfig),
            "--extender-url", extender_url, "--no-leader-election",
            "--metrics-bind", HOST, "--metrics-port", str(port),
        )  # fmt: skip
        if not self.owns_cluster:
            cmd += ["--namespace", self.s.namespace]
        processes.start("operator", cmd, self.s.state_dir)
        processes.wait_http(f"http://{HOST}:{port}/healthz", "operator", self.s.state_dir)

    def _dashboard(self, extender_url: str) -> str:
        """The dashboard the extender serves at /ui/."""
        url = f"{extender_url}/ui/"
        processes.wait_http(url, "extender", self.s.state_dir)
        return url

    def _wait_placed(self, expected: int) -> list[dict[str, Any]]:
        """Every task bound (or Failed) and, when bound, carrying its decision in status."""
        deadline = time.monotonic() + self.s.timeout_s
        strict_until = time.monotonic() + RECORD_GRACE_S
        while True:
            out = self.cluster.kubectl("get", "et", "-n", self.s.namespace, "-o", "json")
            items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
            strict = time.monotonic() < strict_until
            waiting = [t for t in items if not _settled(t, strict)]
            if len(items) >= expected and not waiting:
                return items
            if time.monotonic() > deadline:
                detail = "; ".join(
                    f"{t['metadata']['name']}: phase {(t.get('status') or {}).get('phase')}, "
                    f"{(t.get('status') or {}).get('message', 'no status')}"
                    for t in waiting[:5]
                )
                raise DemoError(
                    f"{len(waiting)} of {expected} tasks not placed after "
                    f"{self.s.timeout_s:.0f} s ({detail}); logs in {self.s.state_dir} and "
                    f"{self.cluster.schedulers_dir}"
                )
            time.sleep(0.5)

    def _save(self, extra: dict[str, Any]) -> None:
        state = {
            "owns_cluster": self.owns_cluster,
            "api_port": self.cluster.api_port,
            "namespace": self.s.namespace,
            "network": self.s.network_name,
            **extra,
        }
        self.state_file.write_text(json.dumps(state, indent=2))

    # ---- down ----------------------------------------------------------------------------
    def down(self) -> None:
        """Stop the demo's processes; remove its objects, or the whole cluster if it made it."""
        s = self.s
        for name in ("dashboard", "operator", "extender"):
            if processes.stop(name, s.state_dir):
                s.log(f"[demo] stopped {name}")
        self.cluster.stop_scheduler(SCHEDULER_NAME)
        if self.owns_cluster:
            self.cluster.down()
        elif self.cluster.is_healthy():
            self.cluster.kubectl("delete", "namespace", s.namespace, "--wait=false", check=False)
            self.cluster.kubectl(
                "delete", "edgenetwork", s.network_name, "--ignore-not-found", check=False
            )
        self.state_file.unlink(missing_ok=True)
        s.log("[demo] down")


def _settled(task: dict[str, Any], strict: bool) -> bool:
    """Failed, or bound with its decision recorded (``strict``) or at least looked for."""
    status = task.get("status") or {}
    if status.get("phase") == "Failed":
        return True
    if not status.get("nodeName"):
        return False
    decision = status.get("decision") or {}
    return bool(decision.get("recorded")) or (not strict and decision.get("source") == "none")
