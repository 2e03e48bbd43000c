"""The operator against the real dev cluster: placement, failures, restarts, node loss, HA, RBAC.

Each test runs the operator as a real subprocess (``edge-allocator operator``) scoped to the
test's namespace, with the default kube-scheduler (``--scheduler-name default-scheduler``), so
the tests need nothing from the extender and never see each other's tasks.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_allocator.cluster.annotations import (
    ANN_DATA_SOURCE_SITE,
    ANN_DECISION,
    ANN_LATENCY_BUDGET_MS,
    LABEL_ATTEMPT,
    LABEL_TASK,
    CandidateScore,
    DecisionRecord,
)
from edge_allocator.devcluster import DevCluster
from edge_allocator.devcluster.fleet import NODE_CLASSES, node_manifest
from edge_allocator.devcluster.processes import free_port

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("edge-allocator"))
SA = "system:serviceaccount:edge-allocator-system:edge-allocator-operator"


# -- helpers ---------------------------------------------------------------------------------


class Operator:
    """``edge-allocator operator`` in a subprocess, logging to a file."""

    def __init__(self, kubeconfig: str, namespace: str, log_dir: Path, *extra: str) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"operator-{self.port}.log"
        self.args = [
            CLI,
            "operator",
            "--kubeconfig",
            kubeconfig,
            "-n",
            namespace,
            "--scheduler-name",
            "default-scheduler",
            "--lease-namespace",
            namespace,
            # roomy enough for a loaded two-core machine (Lease calls are cut off after
            # (duration - deadline) / 2 = 1 s), short enough for a crash to hand over quickly
            "--lease-duration",
            "8",
            "--renew-deadline",
            "6",
            "--retry-period",
            "1",
            "--metrics-bind",
            "127.0.0.1",
            "--metrics-port",
            str(self.port),
            "--node-lost-grace",
            "10",
            *extra,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Operator:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        wait_for(f"operator /healthz on {self.port}", 30, lambda: self.health() is not None)
        return self

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                body: dict[str, Any] = json.loads(r.read())
                return body
        except OSError:
            return None

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"metric {name} not exported")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture()
def operators(kubeconfig: str, namespace: str, tmp_path: Path) -> Iterator[Callable[..., Operator]]:
    """Start operators for the test; stop them all after, printing their logs on failure."""
    started: list[Operator] = []

    def start(
        *extra: str, kubeconfig_path: str = kubeconfig, lease_ns: str | None = None
    ) -> Operator:
        args = list(extra)
        op = Operator(kubeconfig_path, namespace, tmp_path, *args)
        if lease_ns is not None:
            op.args[op.args.index("--lease-namespace") + 1] = lease_ns
        started.append(op)
        return op.start()

    yield start
    for op in started:
        if op.proc is not None and op.proc.poll() is None:
            op.stop()
        print(f"--- {op.log_path.name}\n{op.log_tail()}")


def wait_for(what: str, timeout: float, check: Callable[[], Any], every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    if isinstance(check, AllRunning):
        last = check
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def get_json(cluster: DevCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def task_manifest(
    name: str, site: str = "site-a", node_selector: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "example/app:1",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }
        ]
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "edge-allocator.io/v1alpha1",
        "kind": "EdgeTask",
        "metadata": {"name": name},
        "spec": {"dataSource": {"site": site}, "template": {"spec": pod_spec}, **spec},
    }


def create(cluster: DevCluster, namespace: str, *objs: dict[str, Any]) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": list(objs)}
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(doc))


def tasks_by_name(cluster: DevCluster, namespace: str) -> dict[str, dict[str, Any]]:
    items = get_json(cluster, "edgetasks", "-n", namespace)["items"]
    return {t["metadata"]["name"]: t for t in items}


def live_pods_per_task(cluster: DevCluster, namespace: str) -> Counter[str]:
    pods = get_json(cluster, "pods", "-n", namespace, "-l", LABEL_TASK)["items"]
    live = Counter[str]()
    for p in pods:
        if p["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        if p["metadata"].get("deletionTimestamp"):
            continue
        live[p["metadata"]["labels"][LABEL_TASK]] += 1
    return live


class AllRunning:
    """A wait condition: ``count`` tasks exist and all are Running (remembers the last tally)."""

    def __init__(self, cluster: DevCluster, namespace: str, count: int) -> None:
        self.cluster, self.namespace, self.count = cluster, namespace, count
        self.last: dict[str, int] = {}

    def __call__(self) -> bool:
        tasks = tasks_by_name(self.cluster, self.namespace)
        self.last = dict(Counter(t.get("status", {}).get("phase", "-") for t in tasks.values()))
        return len(tasks) == self.count and self.last.get("Running", 0) == self.count

    def __repr__(self) -> str:
        return f"phases {self.last}"


def all_running(cluster: DevCluster, namespace: str, count: int) -> AllRunning:
    return AllRunning(cluster, namespace, count)


def condition(task: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in task["status"]["conditions"] if c["type"] == type_)


def network_for(namespace: str) -> dict[str, Any]:
    """A test-owned EdgeNetwork over the fleet's sites (merged with any others)."""
    return {
        "apiVersion": "edge-allocator.io/v1alpha1",
        "kind": "EdgeNetwork",
        "metadata": {"name": f"net-{namespace}"},
        "spec": {
            "sites": [{"name": "site-a"}, {"name": "site-b"}, {"name": "site-c"}],
            "links": [
                {"a": "site-a", "b": "site-b", "latencyMs": 5, "bandwidthMbps": 1000},
                {"a": "site-b", "b": "site-c", "latencyMs": 20, "bandwidthMbps": 200},
                {"a": "site-a", "b": "site-c", "latencyMs": 40, "bandwidthMbps": 100},
            ],
        },
    }


@pytest.fixture()
def network(crds: DevCluster, namespace: str) -> Iterator[dict[str, Any]]:
    net = network_for(namespace)
    crds.kubectl("apply", "-f", "-", input=json.dumps(net))
    yield net
    crds.kubectl("delete", "edgenetwork", net["metadata"]["name"], "--wait=false", check=False)


# -- tests -----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_task_is_placed_and_reported(
    crds: DevCluster, namespace: str, network: dict[str, Any], operators: Callable[..., Operator]
) -> None:
    op = operators()
    create(crds, namespace, task_manifest("t1", site="site-a", latencyBudgetMs=50, inputMB=5))
    wait_for(
        "t1 Running",
        60,
        lambda: tasks_by_name(crds, namespace)["t1"].get("status", {}).get("phase") == "Running",
    )

    task = tasks_by_name(crds, namespace)["t1"]
    st = task["status"]
    pod = get_json(crds, "pod", "-n", namespace, "t1-1")
    node = get_json(crds, "node", pod["spec"]["nodeName"])
    node_site = node["metadata"]["labels"]["topology.kubernetes.io/zone"]
    links = {("site-a", "site-a"): 1, ("site-a", "site-b"): 5, ("site-a", "site-c"): 25}

    assert (st["podName"], st["attempts"], st["podUID"]) == ("t1-1", 1, pod["metadata"]["uid"])
    assert (st["nodeName"], st["site"]) == (pod["spec"]["nodeName"], node_site)
    assert st["dataSourceSite"] == "site-a"
    assert st["networkLatencyMs"] == links[("site-a", node_site)]  # shortest path, a-b-c = 25
    assert st["decision"]["recorded"] is False
    assert "without a recorded decision" in st["decision"]["message"]
    assert "score" not in st["decision"]
    for type_ in ("Scheduled", "Ready"):
        cond = condition(task, type_)
        assert (
            cond["status"] == "True"
            and cond["observedGeneration"] == task["metadata"]["generation"]
        )
    assert st["observedGeneration"] == task["metadata"]["generation"]
    for key in ("createdPodTime", "scheduledTime", "startTime"):
        assert st[key].endswith("Z")

    # The pod: owned by the task, carrying the extender's inputs.
    meta = pod["metadata"]
    assert meta["labels"][LABEL_TASK] == "t1" and meta["labels"][LABEL_ATTEMPT] == "1"
    assert meta["annotations"][ANN_DATA_SOURCE_SITE] == "site-a"
    assert meta["annotations"][ANN_LATENCY_BUDGET_MS] == "50"
    (owner,) = meta["ownerReferences"]
    assert owner["uid"] == task["metadata"]["uid"] and owner["controller"] is True
    assert pod["spec"]["schedulerName"] == "default-scheduler"

    # Events for every transition.
    def reasons() -> set[str]:
        events = get_json(
            crds, "events", "-n", namespace, "--field-selector", "involvedObject.name=t1"
        )["items"]
        return {e["reason"] for e in events}

    wait_for("events", 20, lambda: {"PodCreated", "Scheduled", "Running"} <= reasons())

    # The extender's decision annotation, when it appears, fills status.decision.
    record = DecisionRecord(
        policy="gnn",
        model_version="test-1",
        chosen=st["nodeName"],
        score=8,
        rank=1,
        latency_ms=3.5,
        candidates=(CandidateScore(st["nodeName"], 8, 0.8),),
        candidate_count=4,
    )
    crds.kubectl("annotate", "-n", namespace, "pod", "t1-1", f"{ANN_DECISION}={record.to_json()}")
    decided = wait_for(
        "decision recorded",
        20,
        lambda: (
            tasks_by_name(crds, namespace)["t1"]["status"]["decision"].get("recorded")
            and tasks_by_name(crds, namespace)["t1"]["status"]["decision"]
        ),
    )
    assert (decided["policy"], decided["score"], decided["rank"]) == ("gnn", 8, 1)
    assert decided["source"] == "annotation"

    # kubectl shows the columns users watch.
    table = crds.kubectl("get", "et", "-n", namespace, "-o", "wide").stdout
    header = table.splitlines()[0].split()
    assert header[:8] == ["NAME", "PHASE", "NODE", "SITE", "SCORE", "LATENCY", "ATTEMPTS", "AGE"]
    assert "Running" in table and "8" in table.splitlines()[1].split()

    assert op.metric("edge_allocator_operator_placements_total") >= 1
    assert op.metric('edge_allocator_operator_tasks{phase="Running"}') == 1
    assert op.health() == {"status": "ok", "leader": True}


@pytest.mark.timeout(120)
def test_unknown_site_fails_the_task_and_the_operator_carries_on(
    crds: DevCluster, namespace: str, network: dict[str, Any], operators: Callable[..., Operator]
) -> None:
    op = operators()
    create(crds, namespace, task_manifest("lost", site="site-nowhere"), task_manifest("fine"))
    wait_for(
        "lost Failed, fine Running",
        60,
        lambda: (
            {n: t.get("status", {}).get("phase") for n, t in tasks_by_name(crds, namespace).items()}
            == {"lost": "Failed", "fine": "Running"}
        ),
    )
    lost = tasks_by_name(crds, namespace)["lost"]
    failed = condition(lost, "Failed")
    assert failed["status"] == "True" and failed["reason"] == "DataSourceNotFound"
    assert "spec.dataSource.site" in failed["message"] and "site-nowhere" in failed["message"]
    assert lost["status"].get("attempts", 0) == 0
    assert "lost" not in live_pods_per_task(crds, namespace)
    assert op.proc is not None and op.proc.poll() is None
    assert op.health() is not None


@pytest.mark.timeout(300)
def test_500_tasks_survive_two_operator_restarts(
    crds: DevCluster, namespace: str, network: dict[str, Any], operators: Callable[..., Operator]
) -> None:
    total, batch = 500, 25
    manifests = [
        task_manifest(f"bulk-{i:03d}", site=("site-a", "site-b", "site-c")[i % 3])
        for i in range(total)
    ]
    # The creator pauses at these marks until the main thread has restarted the operator, so
    # creation, the restarts and the operator's catching up really interleave.
    marks = {200: threading.Event(), 350: threading.Event()}
    errors: list[str] = []

    def create_all() -> None:
        try:
            for i in range(0, total, batch):
                if i in marks and not marks[i].wait(timeout=60):
                    raise RuntimeError(f"not released at {i}")
                create(crds, namespace, *manifests[i : i + batch])
        except Exception as err:  # reported by the assertion below
            errors.append(str(err))

    op = operators()
    creator = threading.Thread(target=create_all)
    creator.start()
    # Restart 1: a clean stop (the lease is released) while tasks keep arriving.
    wait_for("100 tasks", 60, lambda: len(tasks_by_name(crds, namespace)) >= 100, every=0.2)
    assert op.stop(signal.SIGTERM) == 0
    op = operators()
    marks[200].set()
    # Restart 2: a crash (SIGKILL); tasks arrive while no operator runs, and the next one
    # waits for the dead one's lease to expire.
    wait_for("250 tasks", 60, lambda: len(tasks_by_name(crds, namespace)) >= 250, every=0.2)
    op.stop(signal.SIGKILL)
    marks[350].set()
    op = operators()
    creator.join(timeout=120)
    assert not errors, errors
    wait_for("500 Running", 150, all_running(crds, namespace, total), every=2)

    live = live_pods_per_task(crds, namespace)
    assert len(live) == total and set(live.values()) == {1}, live.most_common(3)
    attempts = Counter(t["status"]["attempts"] for t in tasks_by_name(crds, namespace).values())
    assert attempts == {1: total}


@pytest.fixture()
def test_nodes(crds: DevCluster, namespace: str) -> Iterator[list[str]]:
    """Two kwok nodes of our own in site-a (deleting fleet nodes would disturb other tests)."""
    names = [f"{namespace}-n{i}" for i in (1, 2)]
    items = [
        node_manifest(n, "site-a", NODE_CLASSES["mid"], {"edge-allocator.io/test-pool": namespace})
        for n in names
    ]
    crds.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )
    wait_for(
        "test nodes Ready",
        60,
        lambda: (
            all(
                any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n["status"].get("conditions", [])
                )
                for n in get_json(crds, "nodes", "-l", f"edge-allocator.io/test-pool={namespace}")[
                    "items"
                ]
            )
            and len(
                get_json(crds, "nodes", "-l", f"edge-allocator.io/test-pool={namespace}")["items"]
            )
            == 2
        ),
    )
    yield names
    for n in names:
        crds.kubectl("delete", "node", n, "--wait=false", check=False)


@pytest.mark.timeout(180)
def test_deleted_node_moves_its_tasks_within_30s(
    crds: DevCluster,
    namespace: str,
    network: dict[str, Any],
    operators: Callable[..., Operator],
    test_nodes: list[str],
) -> None:
    operators()
    selector = {"edge-allocator.io/test-pool": namespace}
    create(crds, namespace, *[task_manifest(f"m{i}", node_selector=selector) for i in range(6)])
    wait_for("6 Running", 60, all_running(crds, namespace, 6))
    placed = {n: t["status"]["nodeName"] for n, t in tasks_by_name(crds, namespace).items()}
    victim = Counter(placed.values()).most_common(1)[0][0]
    survivor = next(n for n in test_nodes if n != victim)
    moved = sorted(n for n, node in placed.items() if node == victim)

    crds.kubectl("delete", "node", victim)
    deleted_at = time.monotonic()

    def all_moved() -> bool:
        tasks = tasks_by_name(crds, namespace)
        return all(
            tasks[n]["status"].get("phase") == "Running"
            and tasks[n]["status"].get("nodeName") == survivor
            for n in moved
        )

    wait_for(f"{moved} running on {survivor}", 30, all_moved)
    elapsed = time.monotonic() - deleted_at
    assert elapsed < 30
    tasks = tasks_by_name(crds, namespace)
    for n in moved:
        st = tasks[n]["status"]
        assert st["attempts"] == 2 and st["podName"] == f"{n}-2"
        assert "NodeLost" in st["lastFailure"] and victim in st["lastFailure"]
    for n in set(placed) - set(moved):
        assert tasks[n]["status"]["attempts"] == 1
    live = live_pods_per_task(crds, namespace)
    assert set(live.values()) == {1} and len(live) == 6


@pytest.mark.timeout(180)
def test_two_replicas_one_leader_no_duplicates_and_failover(
    crds: DevCluster, namespace: str, network: dict[str, Any], operators: Callable[..., Operator]
) -> None:
    first = operators("--identity", "replica-1")
    second = operators("--identity", "replica-2")
    leaders = wait_for(
        "one leader",
        20,
        lambda: [op for op in (first, second) if (op.health() or {}).get("leader")],
    )
    assert len(leaders) == 1
    leader, standby = leaders[0], (second if leaders[0] is first else first)
    assert standby.health() == {"status": "ok", "leader": False}

    create(crds, namespace, *[task_manifest(f"ha-{i:02d}") for i in range(40)])
    wait_for("40 Running", 90, all_running(crds, namespace, 40))
    pods = get_json(crds, "pods", "-n", namespace, "-l", LABEL_TASK)["items"]
    assert len(pods) == 40  # one pod per task, none created twice

    lease = get_json(crds, "lease", "-n", namespace, "edge-allocator-operator")
    leader_id = "replica-1" if leader is first else "replica-2"
    assert lease["spec"]["holderIdentity"] == leader_id

    assert leader.stop(signal.SIGTERM) == 0  # a clean stop hands the lease over at once
    wait_for("standby takes over", 15, lambda: (standby.health() or {}).get("leader"))
    create(crds, namespace, *[task_manifest(f"after-{i}") for i in range(5)])
    wait_for("45 Running", 60, all_running(crds, namespace, 45))
    assert len(get_json(crds, "pods", "-n", namespace, "-l", LABEL_TASK)["items"]) == 45


def _service_account_kubeconfig(cluster: DevCluster, path: Path) -> str:
    """A kubeconfig that authenticates as the operator's ServiceAccount (a bound token)."""
    token = cluster.kubectl(
        "create",
        "token",
        "edge-allocator-operator",
        "-n",
        "edge-allocator-system",
        "--duration=1h",
    ).stdout.strip()
    admin = yaml.safe_load(cluster.kubectl("config", "view", "--raw", "--minify").stdout)
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [
            {
                "name": "operator",
                "context": {"cluster": admin["clusters"][0]["name"], "user": "operator"},
            }
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.timeout(120)
def test_rbac_is_least_privilege_and_sufficient(
    crds: DevCluster,
    namespace: str,
    network: dict[str, Any],
    operators: Callable[..., Operator],
    tmp_path: Path,
) -> None:
    crds.kubectl("create", "namespace", "edge-allocator-system", check=False)
    crds.kubectl("apply", "-f", str(ROOT / "deploy/rbac/operator-rbac.yaml"))

    def can(verb: str, resource: str, ns: str | None = namespace) -> bool:
        resource, _, sub = resource.partition("/")
        args = ["auth", "can-i", verb, resource, "--as", SA]
        args += [f"--subresource={sub}"] if sub else []
        args += ["-n", ns] if ns else []
        out = crds.kubectl(*args, check=False)
        return out.stdout.strip() == "yes"

    allowed = [
        ("create", "pods"),
        ("delete", "pods"),
        ("watch", "pods"),
        ("list", "edgetasks.edge-allocator.io"),
        ("patch", "edgetasks.edge-allocator.io/status"),
        ("patch", "edgenetworks.edge-allocator.io/status"),
        ("create", "events"),
        ("list", "nodes"),
    ]
    denied = [
        ("delete", "edgetasks.edge-allocator.io"),
        ("update", "edgetasks.edge-allocator.io"),
        ("patch", "edgetasks.edge-allocator.io"),
        ("create", "edgetasks.edge-allocator.io"),
        ("delete", "edgenetworks.edge-allocator.io"),
        ("patch", "nodes"),
        ("delete", "nodes"),
        ("get", "secrets"),
        ("create", "deployments.apps"),
        ("update", "pods"),
        ("create", "leases.coordination.k8s.io"),  # only in its own namespace
    ]
    for verb, res in allowed:
        assert can(verb, res), f"the operator should be allowed to {verb} {res}"
    for verb, res in denied:
        assert not can(verb, res), f"the operator must not be allowed to {verb} {res}"
    assert can("update", "leases.coordination.k8s.io", "edge-allocator-system")
    assert not can("delete", "leases.coordination.k8s.io", "edge-allocator-system")

    # And the rules suffice: the operator, authenticated as the ServiceAccount, places a task.
    sa_config = _service_account_kubeconfig(crds, tmp_path / "sa.kubeconfig")
    operators(
        "--lease-name",
        f"op-{namespace}",
        kubeconfig_path=sa_config,
        lease_ns="edge-allocator-system",
    )
    create(crds, namespace, task_manifest("as-sa"))
    wait_for("as-sa Running", 60, all_running(crds, namespace, 1))


@pytest.mark.timeout(120)
def test_deleting_a_task_deletes_its_pod_even_with_the_operator_down(
    crds: DevCluster, namespace: str, network: dict[str, Any], operators: Callable[..., Operator]
) -> None:
    op = operators()
    create(crds, namespace, task_manifest("gone"))
    wait_for("gone Running", 60, all_running(crds, namespace, 1))
    op.stop()
    task = tasks_by_name(crds, namespace)["gone"]
    assert not task["metadata"].get("finalizers")
    crds.kubectl("delete", "edgetask", "-n", namespace, "gone", "--wait=true", "--timeout=30s")
    wait_for("pod garbage-collected", 60, lambda: not live_pods_per_task(crds, namespace))


@pytest.mark.timeout(120)
def test_deleted_pod_is_replaced_by_the_next_attempt(
    crds: DevCluster, namespace: str, network: dict[str, Any], operators: Callable[..., Operator]
) -> None:
    op = operators("--backoff-base", "1")
    create(crds, namespace, task_manifest("redo", maxAttempts=2))
    wait_for("redo Running", 60, all_running(crds, namespace, 1))
    crds.kubectl("delete", "pod", "-n", namespace, "redo-1", "--wait=false")

    def second_attempt_running() -> bool:
        st = tasks_by_name(crds, namespace)["redo"].get("status", {})
        return st.get("attempts") == 2 and st.get("phase") == "Running"

    wait_for("attempt 2 Running", 30, second_attempt_running)
    st = tasks_by_name(crds, namespace)["redo"]["status"]
    assert st["podName"] == "redo-2" and "PodDeleted" in st["lastFailure"]
    assert live_pods_per_task(crds, namespace) == Counter({"redo": 1})
    assert op.metric('edge_allocator_operator_reschedules_total{reason="PodDeleted"}') == 1

    # With maxAttempts used up, losing the pod again fails the task for good.
    crds.kubectl("delete", "pod", "-n", namespace, "redo-2", "--wait=false")
    wait_for(
        "redo Failed",
        30,
        lambda: tasks_by_name(crds, namespace)["redo"]["status"].get("phase") == "Failed",
    )
    failed = condition(tasks_by_name(crds, namespace)["redo"], "Failed")
    assert failed["reason"] == "PodDeleted" and "gave up after 2 of 2 attempts" in failed["message"]
