"""The product as users run it: the image built from the Dockerfile, `helm install` on a real node.

A dev cluster of its own (its own state directory and port, next to the default one) with a
kwok edge fleet and one real kubelet node (containerd, runc, CNI, kube-proxy, CoreDNS). The image
is built from the repository's Dockerfile with buildah and imported into the node's containerd;
the chart's operator, extender (2 replicas) and kube-scheduler run there as real containers,
probed by kubelet. EdgeTasks land on the kwok nodes through the chart's scheduler calling the
chart's extender over mutual TLS through its Service. Then: an extender pod dies, the chart is
upgraded, and it is uninstalled, and nothing of it may remain on the node.

Run alone with ``make test-real`` (root; installs the Debian packages it needs). A missing
prerequisite fails the test with the reason; it is never skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_allocator.devcluster import DevCluster, FleetSpec, paths
from edge_allocator.devcluster.components import KUBERNETES_VERSION
from edge_allocator.devcluster.image import ImageBuilder
from edge_allocator.devcluster.realnode import (
    CGROUP_ROOT,
    REAL_NODE_LABEL,
    SCHEDULER_REPOSITORY,
)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "edge-allocator"
NS = "edge-allocator"
RELEASE = "ea"
TASK_NS = "edge-tasks"
STATE_DIR = Path(
    os.environ.get("EDGE_ALLOCATOR_REAL_DIR", str(ROOT / ".cache" / "devcluster-real"))
)
API_PORT = int(os.environ.get("EDGE_ALLOCATOR_REAL_PORT", "36543"))
IMAGE_TAG = "e2e"

pytestmark = [pytest.mark.real_node, pytest.mark.timeout(2400)]


def log(msg: str) -> None:
    print(f"[e2e-real {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built_image() -> ImageBuilder:
    t0 = time.monotonic()
    builder = ImageBuilder(tag=IMAGE_TAG, log=log)
    built = builder.build()
    log(f"image {built.name}: {built.size_bytes / 1e6:.0f} MB in {time.monotonic() - t0:.0f}s")
    return builder


@pytest.fixture(scope="module")
def cluster(built_image: ImageBuilder) -> Iterator[DevCluster]:
    t0 = time.monotonic()
    c = DevCluster(
        fleet=FleetSpec(nodes=6, sites=("site-a", "site-b", "site-c")),
        api_port=API_PORT,
        state_root=STATE_DIR,
        real_node=True,
        log=log,
    )
    c.up(images=[built_image.archive])
    log(f"cluster with a real node up in {time.monotonic() - t0:.0f}s")
    yield c
    if os.environ.get("EDGE_ALLOCATOR_KEEP_CLUSTER") != "1":
        c.down()


def helm(c: DevCluster, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    cmd = [str(paths.bin_dir() / "helm"), "--kubeconfig", str(c.kubeconfig), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def values_file(tmp: Path) -> Path:
    """Our images (never pulled) and every component pinned to the real node."""
    placement = {
        "nodeSelector": {REAL_NODE_LABEL: "true"},
        "tolerations": [
            {"key": REAL_NODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        ],
    }
    values = {
        "image": {
            "repository": "localhost/edge-allocator",
            "tag": IMAGE_TAG,
            "pullPolicy": "Never",
        },
        "extender": {"replicas": 2, **placement},
        "operator": {**placement},
        "scheduler": {
            "image": {
                "repository": SCHEDULER_REPOSITORY,
                "tag": KUBERNETES_VERSION,
                "pullPolicy": "Never",
            },
            **placement,
        },
    }
    path = tmp / "values-real-node.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def poll(check: Callable[[], Any], timeout: float) -> Any:
    """``check()``'s first truthy value within ``timeout`` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(2)
    return last


def wait_for(what: str, check: Callable[[], Any], timeout: float, c: DevCluster) -> Any:
    last = poll(check, timeout)
    if last:
        return last
    pods = c.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
    raise AssertionError(f"{what}: not true after {timeout:.0f}s (last: {last!r})\n{pods}")


def get_json(c: DevCluster, *args: str) -> dict[str, Any]:
    out = c.kubectl("get", *args, "-o", "json")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def release_pods(c: DevCluster) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get_json(
        c, "pods", "-n", NS, "-l", f"app.kubernetes.io/instance={RELEASE}"
    )["items"]
    return items


def all_ready(c: DevCluster, expect: int) -> list[dict[str, Any]] | None:
    pods = [p for p in release_pods(c) if not p["metadata"].get("deletionTimestamp")]
    ready = [
        p
        for p in pods
        if p["status"].get("phase") == "Running"
        and all(s.get("ready") for s in p["status"].get("containerStatuses", []))
    ]
    return ready if len(pods) == expect and len(ready) == expect else None


def component(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["labels"]["app.kubernetes.io/component"])


def edgetask(name: str, site: str, budget_ms: int) -> dict[str, Any]:
    return {
        "apiVersion": "edge-allocator.io/v1alpha1",
        "kind": "EdgeTask",
        "metadata": {"name": name, "namespace": TASK_NS},
        "spec": {
            "dataSource": {"site": site},
            "inputMB": 50,
            "latencyBudgetMs": budget_ms,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "work",
                            "image": "registry.example.com/edge/work:1.0",
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ]
                }
            },
        },
    }


def placed(c: DevCluster, name: str) -> dict[str, Any] | None:
    """The task's status once it is placed with a decision from the extender."""
    out = c.kubectl("get", "edgetask", name, "-n", TASK_NS, "-o", "json", check=False)
    if out.returncode != 0:
        return None
    status: dict[str, Any] = json.loads(out.stdout).get("status", {})
    decision = status.get("decision") or {}
    if status.get("phase") in ("Scheduled", "Running") and status.get("nodeName") and decision:
        return status
    return None


def apply_tasks(c: DevCluster, tasks: list[dict[str, Any]]) -> None:
    c.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": tasks})
    )


def check_placed(c: DevCluster, names: list[str], budget_ms: int, kwok_nodes: set[str]) -> None:
    for name in names:

        def this(n: str = name) -> dict[str, Any] | None:
            # A decision is recorded on the Binding, or PATCHed onto the pod within the bind
            # grace when kube-scheduler bound it itself (an extender replica rolling away
            # mid-bind after the upgrade): the status takes it from the pod then.
            status = placed(c, n)
            return status if status is not None and status["decision"].get("policy") else None

        status = wait_for(f"EdgeTask {name} placed with its decision recorded", this, 180, c)
        assert status["nodeName"] in kwok_nodes, (name, status["nodeName"])
        assert status.get("networkLatencyMs", 0) <= budget_ms, (name, status)
        decision = status["decision"]
        assert decision.get("policy"), decision
        assert decision.get("chosenNode") == status["nodeName"], decision


# ---- what the host shows about a container ---------------------------------------------------
def container_processes(c: DevCluster) -> dict[str, int]:
    """containerd task id -> host pid, for every running container of the real node."""
    node = c.realnode()
    out = node.ctr("tasks", "ls")
    pids = {}
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "RUNNING":
            pids[parts[0]] = int(parts[1])
    return pids


def container_pid(c: DevCluster, pod: dict[str, Any], container: str) -> int:
    statuses = {s["name"]: s for s in pod["status"]["containerStatuses"]}
    cid = statuses[container]["containerID"].split("://", 1)[1]
    return container_processes(c)[cid]


def proc_status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def root_mount_options(pid: int) -> list[str]:
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        parts = line.split()
        if parts[4] == "/":
            return parts[5].split(",")
    raise AssertionError(f"no / mount for pid {pid}")


def leftovers(c: DevCluster, pod_uids: set[str], services: list[str]) -> list[str]:
    """What of the release is still on the node: containers, pod cgroups, iptables rules."""
    found = []
    node = c.realnode()
    containers = node.ctr("containers", "ls", "-q").split()
    for cid in containers:
        text = node.ctr("containers", "info", cid, check=False)
        if not text.strip():  # removed since the listing (the kubelet collecting it): gone
            continue
        info = json.loads(text)
        labels = info.get("Labels", {})
        if labels.get("io.kubernetes.pod.uid") in pod_uids:
            found.append(f"container {cid} ({labels.get('io.kubernetes.pod.name')})")
    for uid in pod_uids:
        for cg in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_ROOT}/kubepods*/**/pod{uid}"):
            found.append(f"cgroup {cg}")
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    for svc in services:
        if f"{NS}/{svc}" in rules:
            found.append(f"iptables rules for {NS}/{svc}")
    return found


def namespace_state(c: DevCluster, ns: str) -> str:
    """Why a namespace is still there: its conditions, what it holds, the aggregated APIs."""
    got = c.kubectl("get", "namespace", ns, "-o", "json", check=False)
    if got.returncode != 0:
        return f"namespace {ns}: not read ({got.stderr.strip()})"
    conditions = [
        f"{x.get('type')}={x.get('status')}: {x.get('message', '')}"
        for x in json.loads(got.stdout).get("status", {}).get("conditions", [])
    ]
    content = c.kubectl(
        "get", "pods,edgetasks", "-n", ns, "-o",
        "custom-columns=KIND:.kind,NAME:.metadata.name,NODE:.spec.nodeName,TASK_NODE:.status.nodeName,"
        "DELETING:.metadata.deletionTimestamp,FINALIZERS:.metadata.finalizers",
        check=False,
    )  # fmt: skip
    apis = c.kubectl("get", "apiservices", check=False).stdout
    unavailable = [line for line in apis.splitlines() if "False" in line]
    return "\n".join(
        [f"namespace {ns} conditions:", *conditions, "holds:", content.stdout + content.stderr,
         "unavailable API services:", *unavailable]
    )  # fmt: skip


def namespace_present(c: DevCluster, ns: str) -> bool:
    """True until the API server says the namespace is gone; a failed read counts as present."""
    got = c.kubectl("get", "namespace", ns, "--ignore-not-found", "-o", "name", check=False)
    return got.returncode != 0 or bool(got.stdout.strip())


def delete_task_namespace(c: DevCluster, kwok_nodes: set[str]) -> None:
    """Delete the tasks' namespace and wait until it is gone, saying why when it is slow.

    The namespace controller waits for every pod in it to be confirmed gone (by kwok for pods on
    the fake nodes) and for discovery of every API group to succeed. After 240 s the state is
    logged and pods still terminating on kwok nodes (fake; nothing runs there) are force-removed;
    180 s later the test fails with the namespace's conditions.
    """
    c.kubectl("delete", "namespace", TASK_NS, "--ignore-not-found", "--wait=false")
    t0 = time.monotonic()

    def gone() -> bool:
        return not namespace_present(c, TASK_NS)

    if not poll(gone, 240):
        log(f"namespace {TASK_NS} still terminating after 240s\n" + namespace_state(c, TASK_NS))
        got = c.kubectl("get", "pods", "-n", TASK_NS, "-o", "json", check=False)
        pods = json.loads(got.stdout)["items"] if got.returncode == 0 else []
        stuck = [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") in kwok_nodes]
        if stuck:
            log(f"force-removing {len(stuck)} pods on kwok nodes: {stuck}")
            c.kubectl(
                "delete", "pod", "-n", TASK_NS, *stuck, "--grace-period=0", "--force",
                "--wait=false", check=False,
            )  # fmt: skip
        if not poll(gone, 180):
            state = namespace_state(c, TASK_NS)
            raise AssertionError(f"namespace {TASK_NS} not gone after 420s\n{state}")
    log(f"namespace {TASK_NS} deleted in {time.monotonic() - t0:.0f}s")


# ---- the test ---------------------------------------------------------------------------------
def test_helm_chart_on_a_real_node(cluster: DevCluster, tmp_path: Path) -> None:
    c = cluster
    timings: dict[str, float] = {}
    kwok_nodes = {
        n["metadata"]["name"]
        for n in get_json(c, "nodes")["items"]
        if n["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake"
    }
    assert len(kwok_nodes) == 6
    values = values_file(tmp_path)
    # A kept cluster (EDGE_ALLOCATOR_KEEP_CLUSTER=1) may hold an earlier run's release.
    helm(c, "uninstall", RELEASE, "-n", NS, "--ignore-not-found", "--wait", "--timeout", "5m")
    delete_task_namespace(c, kwok_nodes)

    # 1. helm install: real containers, probes by kubelet.
    t0 = time.monotonic()
    out = helm(
        c, "install", RELEASE, str(CHART), "-n", NS, "--create-namespace", "-f", str(values),
        "--wait", "--timeout", "10m",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout
    pods = wait_for("4 release pods Ready", lambda: all_ready(c, 4), 300, c)
    timings["install"] = time.monotonic() - t0
    log(f"installed in {timings['install']:.0f}s")
    real = c.realnode().name
    for p in pods:
        assert p["spec"]["nodeName"] == real, p["metadata"]["name"]
        for s in p["status"]["containerStatuses"]:
            assert s["ready"] and "running" in s["state"], s
    components = sorted(component(p) for p in pods)
    assert components == ["extender", "extender", "operator", "scheduler"]
    # Every container is probed by kubelet (liveness; readiness where the chart serves it).
    for p in pods:
        spec = p["spec"]["containers"][0]
        assert spec.get("livenessProbe"), p["metadata"]["name"]
        if component(p) != "operator":
            assert spec.get("readinessProbe"), p["metadata"]["name"]

    # 2. The security context, as the host sees each container's process.
    for p in pods:
        container = p["spec"]["containers"][0]["name"]
        pid = container_pid(c, p, container)
        st = proc_status(pid)
        assert st["Uid"].split()[:2] == ["10001", "10001"], (p["metadata"]["name"], st["Uid"])
        assert st["CapEff"] == "0000000000000000", (p["metadata"]["name"], st["CapEff"])
        assert st["CapPrm"] == "0000000000000000", (p["metadata"]["name"], st["CapPrm"])
        assert st.get("NoNewPrivs") == "1", p["metadata"]["name"]
        assert "ro" in root_mount_options(pid), p["metadata"]["name"]
    ext = next(p for p in pods if component(p) == "extender")
    probe = c.kubectl(
        "exec", "-n", NS, ext["metadata"]["name"], "--", "python", "-c",
        "import os\ntry:\n    open('/probe', 'w')\n    print('writable')\nexcept OSError as e:\n"
        "    print('read-only' if e.errno == 30 else e)\nprint(os.getuid(), os.getgid())",
    )  # fmt: skip
    assert probe.stdout.split() == ["read-only", "10001", "10001"], probe.stdout

    # 3. A task placed through the chart's scheduler -> extender (mTLS, via the Service).
    c.kubectl("apply", "-f", str(ROOT / "examples" / "edgenetwork-3-sites.yaml"))
    c.kubectl("create", "namespace", TASK_NS)
    t0 = time.monotonic()
    apply_tasks(c, [edgetask("first", "site-a", 10)])
    check_placed(c, ["first"], 10, kwok_nodes)
    timings["first-placement"] = time.monotonic() - t0
    sched = next(p for p in pods if component(p) == "scheduler")
    sched_log = c.kubectl("logs", "-n", NS, sched["metadata"]["name"]).stdout
    assert "x509" not in sched_log and "tls:" not in sched_log, sched_log[-2000:]
    # The extender refuses a verb call without a client certificate (mutual TLS is on).
    anon = c.kubectl(
        "exec", "-n", NS, ext["metadata"]["name"], "--", "python", "-c",
        "import ssl, urllib.request\nctx = ssl._create_unverified_context()\n"
        "try:\n    urllib.request.urlopen(urllib.request.Request("
        f"'https://{RELEASE}-edge-allocator-extender.{NS}.svc/filter', data=b'{{}}', "
        "method='POST'), context=ctx, timeout=5)\n    print('accepted')\n"
        "except Exception as e:\n    print('refused', type(e).__name__)",
        check=False,
    )  # fmt: skip
    assert anon.stdout.startswith("refused"), anon.stdout + anon.stderr

    # 4. One extender pod dies: placements continue through the other.
    extenders = [p["metadata"]["name"] for p in pods if "extender" in p["metadata"]["name"]]
    c.kubectl(
        "delete", "pod", "-n", NS, extenders[0], "--grace-period=0", "--force", "--wait=false"
    )
    names = [f"after-kill-{i}" for i in range(3)]
    apply_tasks(c, [edgetask(n, "site-b", 10) for n in names])
    check_placed(c, names, 10, kwok_nodes)
    wait_for("extender replaced", lambda: all_ready(c, 4), 300, c)

    # 5. helm upgrade changing a value rolls the pods and loses no task.
    before = {p["metadata"]["name"] for p in release_pods(c)}
    tasks_before = {
        t["metadata"]["name"]: t["status"]["nodeName"]
        for t in get_json(c, "edgetasks", "-n", TASK_NS)["items"]
    }
    t0 = time.monotonic()
    out = helm(
        c, "upgrade", RELEASE, str(CHART), "-n", NS, "-f", str(values),
        "--set", "extender.podAnnotations.rolled=yes",
        "--set", "operator.podAnnotations.rolled=yes",
        "--wait", "--timeout", "10m",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout
    rolled = wait_for("pods rolled and Ready", lambda: all_ready(c, 4), 300, c)
    timings["upgrade"] = time.monotonic() - t0
    new_names = {p["metadata"]["name"] for p in rolled}
    assert len(new_names - before) >= 3, (before, new_names)  # 2 extenders + the operator
    apply_tasks(c, [edgetask("after-upgrade", "site-c", 30)])
    check_placed(c, ["after-upgrade"], 30, kwok_nodes)
    tasks_after = {
        t["metadata"]["name"]: t["status"].get("nodeName")
        for t in get_json(c, "edgetasks", "-n", TASK_NS)["items"]
    }
    for name, node in tasks_before.items():
        assert tasks_after.get(name) == node, (name, node, tasks_after.get(name))

    # 6. helm uninstall leaves no object, container, cgroup or iptables rule.
    uids = {p["metadata"]["uid"] for p in release_pods(c)} | {p["metadata"]["uid"] for p in pods}
    services = [s["metadata"]["name"] for s in get_json(c, "services", "-n", NS)["items"]]
    manifest = helm(c, "get", "manifest", RELEASE, "-n", NS).stdout
    delete_task_namespace(c, kwok_nodes)
    t0 = time.monotonic()
    out = helm(c, "uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "5m")
    assert out.returncode == 0, out.stderr + out.stdout
    for doc in yaml.safe_load_all(manifest):
        if doc:
            meta = doc["metadata"]
            args = [
                "get",
                doc["kind"],
                meta["name"],
                *(["-n", meta["namespace"]] if meta.get("namespace") else []),
            ]
            got = c.kubectl(*args, check=False)
            assert got.returncode != 0, f"{doc['kind']}/{meta['name']} remains"
    wait_for("no pods left", lambda: not release_pods(c), 180, c)

    def clean() -> bool:
        return not leftovers(c, uids, services)

    wait_for("nothing of the release left on the node", clean, 180, c)
    timings["uninstall"] = time.monotonic() - t0
    log("timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
