"""How the EdgeTask operator holds up at scale on the dev cluster (kwok nodes, real scheduler).

Creates N EdgeTasks on M extra kwok nodes, runs the operator as a subprocess, and watches tasks
and pods from this process to time, per task (all on one monotonic clock):

  create -> pod created      what the operator adds before the scheduler can act
  create -> pod bound        what a user waits for a placement (operator + scheduler)
  create -> Scheduled        until the task's status shows the node
  first create -> all Running

and the operator's peak RSS (VmHWM from /proc). Before the operator starts, the same number
of bare pods (same requests, same nodes, default scheduler) is created the same way, so the
pod's own create -> bound time on this machine is measured in the same run: the operator's
cost is the difference. Usage::

    .venv/bin/python bench/operator_scale.py --tasks 5000 --nodes 200
    .venv/bin/python bench/operator_scale.py --tasks 1000 --nodes 50 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from edge_allocator.devcluster.fleet import NODE_CLASSES, node_manifest
from edge_allocator.operator.kubeapi import ApiError, KubeApi, load_credentials

ROOT = Path(__file__).resolve().parents[1]
SITES = ("site-a", "site-b", "site-c")
GROUP_PATH = "/apis/edge-allocator.io/v1alpha1"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Recorder:
    """First-seen times per task for each milestone."""

    def __init__(self) -> None:
        self.created: dict[str, float] = {}
        self.pod_created: dict[str, float] = {}
        self.pod_bound: dict[str, float] = {}
        self.scheduled: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.bare_created: dict[str, float] = {}
        self.bare_bound: dict[str, float] = {}

    def on_task(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        st = obj.get("status") or {}
        now = time.monotonic()
        if st.get("nodeName"):
            self.scheduled.setdefault(name, now)
        if st.get("phase") == "Running":
            self.running.setdefault(name, now)

    def on_pod(self, obj: dict[str, Any]) -> None:
        labels = obj["metadata"].get("labels") or {}
        now = time.monotonic()
        if labels.get("bench-baseline"):
            if (obj.get("spec") or {}).get("nodeName"):
                self.bare_bound.setdefault(obj["metadata"]["name"], now)
            return
        task = labels.get("edge-allocator.io/task")
        if not task:
            return
        self.pod_created.setdefault(task, now)
        if (obj.get("spec") or {}).get("nodeName"):
            self.pod_bound.setdefault(task, now)


async def watch(api: KubeApi, path: str, handle: Any, stop: asyncio.Event) -> None:
    """Stream watch events of ``path`` into ``handle`` until ``stop`` (reconnects)."""
    creds = api.credentials
    rv = ""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    connector = aiohttp.TCPConnector(ssl=creds.ssl_context)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        while not stop.is_set():
            params = {"watch": "1", "allowWatchBookmarks": "true", "timeoutSeconds": "600"}
            if rv:
                params["resourceVersion"] = rv
            async with session.get(
                creds.server + path, params=params, headers=creds.auth_headers()
            ) as resp:
                async for line in resp.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        handle(obj)
                    if stop.is_set():
                        return


def task_body(name: str, i: int, pool: str) -> dict[str, Any]:
    return {
        "apiVersion": "edge-allocator.io/v1alpha1",
        "kind": "EdgeTask",
        "metadata": {"name": name},
        "spec": {
            "dataSource": {"site": SITES[i % len(SITES)]},
            "inputMB": 10,
            "template": {
                "spec": {
                    "nodeSelector": {"edge-allocator.io/bench": pool},
                    "containers": [
                        {
                            "name": "main",
                            "image": "example/bench:1",
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ],
                }
            },
        },
    }


def bare_pod(name: str, pool: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench-baseline": "1"}},
        "spec": {
            "schedulerName": "default-scheduler",
            "restartPolicy": "Never",
            "nodeSelector": {"edge-allocator.io/bench": pool},
            "containers": [
                {
                    "name": "main",
                    "image": "example/bench:1",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ],
        },
    }


async def create_many(
    api: KubeApi,
    path: str,
    bodies: list[tuple[str, dict[str, Any]]],
    stamps: dict[str, float],
    concurrency: int,
) -> float:
    """POST every body (``concurrency`` at a time), stamping each just before it is sent."""
    sem = asyncio.Semaphore(concurrency)

    async def one(name: str, body: dict[str, Any]) -> None:
        async with sem:
            stamps[name] = time.monotonic()
            for _ in range(5):
                try:
                    await api.request("POST", path, body)
                    return
                except ApiError as err:
                    if err.status == 409:
                        return
                    await asyncio.sleep(0.5)

    t0 = time.monotonic()
    await asyncio.gather(*(one(n, b) for n, b in bodies))
    return time.monotonic() - t0


def latency(start: dict[str, float], milestone: dict[str, float]) -> dict[str, float]:
    vals = [milestone[k] - start[k] for k in milestone if k in start]
    return {
        "n": len(vals),
        "p50_s": round(pct(vals, 50), 3),
        "p99_s": round(pct(vals, 99), 3),
        "max_s": round(max(vals), 3) if vals else float("nan"),
    }


def scrape(port: int) -> dict[str, float]:
    import urllib.request

    out: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("edge_allocator_operator_") and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                if "_bucket" not in key and "_created" not in key:
                    out[key] = float(value)
    return out


async def cleanup(api: KubeApi, ns: str, nodes: list[str]) -> None:
    """Delete tasks and pods at once (grace 0) while their kwok nodes still exist, wait for the
    pods to go, then the namespace and the nodes (pods on deleted nodes linger for minutes)."""
    force = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
    for path in (f"{GROUP_PATH}/namespaces/{ns}/edgetasks", f"/api/v1/namespaces/{ns}/pods"):
        # A big collection outlives the client timeout; the server finishes it regardless.
        with contextlib.suppress(ApiError, TimeoutError, OSError):
            await api.request("DELETE", path, force)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with contextlib.suppress(ApiError, TimeoutError, OSError):
            left = await api.request("GET", f"/api/v1/namespaces/{ns}/pods", params={"limit": "1"})
            if not left.get("items"):
                break
        await asyncio.sleep(2)
    with contextlib.suppress(ApiError):
        await api.request("DELETE", f"/api/v1/namespaces/{ns}")
    for name in nodes:
        with contextlib.suppress(ApiError):
            await api.request("DELETE", f"/api/v1/nodes/{name}")


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    text = json.dumps(result, indent=2)
    print(text, flush=True)
    if args.json:
        Path(args.json).write_text(text + "\n")
    line = (
        f"[bench] all Running: {result.get('all_running')} in "
        f"{result.get('time_to_all_running_s')}s; the operator's share (create -> pod created) "
        f"p99 {result['create_to_pod_created']['p99_s']:.3f}s (target < 1 s); create -> bound "
        f"p99 {result['create_to_pod_bound']['p99_s']:.3f}s"
    )
    if "baseline_pod_create_to_bound" in result:
        base = result["baseline_pod_create_to_bound"]["p99_s"]
        line += f" (bare pods, same harness, no operator: {base:.3f}s)"
    print(line + f"; peak RSS {result['peak_rss_mib']} MiB (target < 400 MiB)", flush=True)


async def create_nodes(api: KubeApi, count: int, pool: str) -> list[str]:
    names = []
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        site = SITES[i % len(SITES)]
        name = f"bench-{pool}-{i:04d}"
        body = node_manifest(name, site, NODE_CLASSES["server"], {"edge-allocator.io/bench": pool})
        async with sem:
            await api.request("POST", "/api/v1/nodes", body)
        names.append(name)

    await asyncio.gather(*(one(i) for i in range(count)))
    return names


async def wait_nodes_ready(api: KubeApi, pool: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes = await api.request(
            "GET", "/api/v1/nodes", params={"labelSelector": f"edge-allocator.io/bench={pool}"}
        )
        ready = sum(
            1
            for n in nodes["items"]
            for c in n.get("status", {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"
        )
        if ready >= count:
            return
        await asyncio.sleep(1)
    raise SystemExit(f"bench nodes not Ready after {timeout:.0f}s")


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    api = KubeApi(load_credentials(args.kubeconfig))
    run_id = uuid.uuid4().hex[:6]
    ns, pool = f"bench-{run_id}", run_id
    kubectl = [str(ROOT / ".cache/bin/kubectl"), "--kubeconfig", args.kubeconfig]
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")],
        check=True,
        capture_output=True,
    )
    await api.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    print(f"[bench] namespace {ns}: creating {args.nodes} kwok nodes", flush=True)
    nodes = await create_nodes(api, args.nodes, pool)
    await wait_nodes_ready(api, pool, args.nodes, 300)

    rec = Recorder()
    stop = asyncio.Event()
    watchers = [
        asyncio.create_task(
            watch(api, f"{GROUP_PATH}/namespaces/{ns}/edgetasks", rec.on_task, stop)
        ),
        asyncio.create_task(watch(api, f"/api/v1/namespaces/{ns}/pods", rec.on_pod, stop)),
    ]
    result: dict[str, Any] = {"tasks": args.tasks, "nodes": args.nodes, "namespace": ns}
    await asyncio.sleep(1)
    if args.baseline:
        print(f"[bench] baseline: {args.baseline} bare pods, no operator", flush=True)
        bodies = [(f"bare-{i:05d}", bare_pod(f"bare-{i:05d}", pool)) for i in range(args.baseline)]
        await create_many(
            api, f"/api/v1/namespaces/{ns}/pods", bodies, rec.bare_created, args.concurrency
        )
        deadline = time.monotonic() + args.timeout
        while len(rec.bare_bound) < args.baseline and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        result["baseline_pod_create_to_bound"] = latency(rec.bare_created, rec.bare_bound)

    port = free_port()
    log = open(args.operator_log, "w")  # noqa: SIM115 - lives as long as the operator
    op = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("edge-allocator")),
            "operator",
            "--kubeconfig",
            args.kubeconfig,
            "-n",
            ns,
            "--scheduler-name",
            args.scheduler_name,
            "--lease-namespace",
            ns,
            "--metrics-bind",
            "127.0.0.1",
            "--metrics-port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        await asyncio.sleep(3)  # operator up, watches established
        print(f"[bench] creating {args.tasks} EdgeTasks", flush=True)
        path = f"{GROUP_PATH}/namespaces/{ns}/edgetasks"
        bodies = [(f"task-{i:05d}", task_body(f"task-{i:05d}", i, pool)) for i in range(args.tasks)]
        t0 = time.monotonic()
        await create_many(api, path, bodies, rec.created, args.concurrency)
        t_created = time.monotonic()
        deadline = t0 + args.timeout
        last_print = 0.0
        while len(rec.running) < args.tasks and time.monotonic() < deadline:
            if op.poll() is not None:
                raise SystemExit(f"operator exited with {op.returncode}; see {args.operator_log}")
            await asyncio.sleep(0.5)
            if time.monotonic() - last_print > 10:
                last_print = time.monotonic()
                print(
                    f"[bench] {time.monotonic() - t0:6.1f}s running {len(rec.running)}/"
                    f"{args.tasks}, pods bound {len(rec.pod_bound)}",
                    flush=True,
                )
        done = time.monotonic()
        result["peak_rss_mib"] = round(peak_rss_mib(op.pid), 1)

        bound_after_pod = [
            rec.pod_bound[k] - rec.pod_created[k] for k in rec.pod_bound if k in rec.pod_created
        ]
        result.update(
            all_running=len(rec.running) == args.tasks,
            running=len(rec.running),
            create_phase_s=round(t_created - t0, 2),
            time_to_all_running_s=round(done - t0, 2),
            create_to_pod_created=latency(rec.created, rec.pod_created),
            create_to_pod_bound=latency(rec.created, rec.pod_bound),
            create_to_status_scheduled=latency(rec.created, rec.scheduled),
            pod_created_to_bound={
                "p50_s": round(pct(bound_after_pod, 50), 3),
                "p99_s": round(pct(bound_after_pod, 99), 3),
            },
            throughput_tasks_per_s=round(len(rec.running) / max(done - t0, 1e-9), 1),
        )
        with contextlib.suppress(OSError):
            result["operator_metrics"] = scrape(port)
        cpu = Path(f"/proc/{op.pid}/stat").read_text().split()
        result["operator_cpu_s"] = round(
            (int(cpu[13]) + int(cpu[14])) / os.sysconf("SC_CLK_TCK"), 1
        )
        report(result, args)  # before the (slow) cleanup
    finally:
        stop.set()
        for w in watchers:
            w.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*watchers, return_exceptions=True)
        op.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            op.wait(timeout=30)
        log.close()
        if not args.keep:
            print("[bench] cleaning up", flush=True)
            await cleanup(api, ns, nodes)
        await api.close()
    return result


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", type=int, default=5000)
    p.add_argument("--nodes", type=int, default=200)
    p.add_argument("--kubeconfig", default=str(ROOT / ".cache/devcluster/kubeconfig"))
    p.add_argument("--scheduler-name", default="default-scheduler")
    p.add_argument(
        "--baseline",
        type=int,
        default=None,
        help="bare pods to time first (default: as many as tasks; 0: skip)",
    )
    p.add_argument("--concurrency", type=int, default=16, help="parallel create requests")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--operator-log", default="/tmp/edge-allocator-operator-bench.log")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--keep", action="store_true", help="leave the namespace and nodes behind")
    args = p.parse_args()
    if args.baseline is None:
        args.baseline = args.tasks
    result = asyncio.run(bench(args))
    return 0 if result.get("all_running", False) else 1


if __name__ == "__main__":
    raise SystemExit(main())
