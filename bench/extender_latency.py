"""/filter and /prioritize latency over loopback HTTP: p50/p99 at 10, 100 and 1,000 candidates.

Usage: python bench/extender_latency.py [--policy auto] [--requests 400] [--json out.json]
       [--background N [--no-gate]]

The extender app runs in its own process as in production (one uvicorn worker, uvloop,
httptools) over a 1,000-node snapshot from the simulator's smart-city scenario, to which each
decision's placement is applied as the watch cache applies it (the next request sees one node
changed: the one-node-changed path, with incremental embeddings); the client
sends the ExtenderArgs kube-scheduler sends with ``nodeCacheCapable: true`` (an EdgeTask pod and
node names) on one keep-alive connection, one request at a time, and times each round trip.
Requests are ``--gap-ms`` apart (default 5 ms: kube-scheduler's own work per pod between two
extender calls at 1,000 nodes), the time in which the extender prepares the next snapshot.
Targets: p99 <= 5 ms at 1,000 candidates round trip; /prioritize server side p99 <= 2 ms.
``--background N`` adds N threads to the server that do a pod reflector's work (watch events
parsed and folded into a cache) next to the verbs, waiting on the verb gate as the real
reflectors do, or not with ``--no-gate``: what the gate is worth, measured.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

# numpy is loaded before edge_allocator here: hold OpenBLAS to one thread as the package does
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from edge_allocator.cluster import annotations as ann
from edge_allocator.cluster.snapshot import ClusterSnapshot

SIZES = (10, 100, 1000)


def snapshot(nodes: int) -> ClusterSnapshot:
    from edge_allocator.sim.engine import Simulator
    from edge_allocator.sim.scenario import load_scenario

    sim = Simulator(load_scenario("smart-city").resized(nodes, 10), seed=1)
    sim._reset()
    return sim.snapshot(0.0)


def watch_event_line(i: int) -> str:
    """One watch event as the API server sends it for a bound task pod (~3 KB of JSON)."""
    names = [f"bench-{k:04d}" for k in range(i % 50, i % 50 + 8)]
    decision = {"policy": "gnn", "chosen": names[0], "candidates": [[n, 9, 0.5] for n in names]}
    pod = {
        "metadata": {
            "name": f"bench-{i}",
            "namespace": "bench",
            "uid": f"uid-{i}",
            "resourceVersion": str(1000 + i),
            "labels": {ann.LABEL_MANAGED: "true"},
            "annotations": {ann.ANN_DECISION: json.dumps(decision) * 3},
        },
        "spec": {
            "nodeName": names[0],
            "schedulerName": ann.SCHEDULER_NAME,
            "containers": [
                {"name": "t", "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}}
            ],
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2026-12-01T19:02:59Z"}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
        },
    }
    return json.dumps({"type": "MODIFIED", "object": pod})


def watch_load(pace: Any, threads: int) -> None:
    """``threads`` threads doing a pod reflector's work per watch event (parse the event,
    fold it into a watch cache), three events every 0-4 ms each: the competition for the
    interpreter lock that a busy cluster's watches bring to the verb worker. Each event first
    calls ``pace`` (the verb gate's pacer, as the real reflectors do) unless it is None."""
    import random
    import threading

    from edge_allocator.extender.cache import PODS, WatchCache

    lines = [watch_event_line(i) for i in range(200)]

    def run(seed: int) -> None:
        rng = random.Random(seed)
        cache = WatchCache()
        cache.mark_synced(PODS)
        i = 0
        while True:
            for _ in range(3):
                if pace is not None:
                    pace()
                cache.upsert(PODS, json.loads(lines[i % len(lines)])["object"])
                i += 1
            time.sleep(rng.uniform(0.0, 0.004))

    for k in range(threads):
        threading.Thread(target=run, args=(k,), name=f"watch-load-{k}", daemon=True).start()


def serve(port: int, nodes: int, policy: str, background: int = 0, gate: bool = True) -> None:
    import torch
    import uvicorn

    from edge_allocator.extender.app import create_app
    from edge_allocator.extender.models import ModelManager
    from edge_allocator.extender.server import initial_policy, settle_for_serving
    from edge_allocator.extender.service import ExtenderService, StaticSource
    from edge_allocator.extender.settings import Settings

    snap = snapshot(nodes)
    source = StaticSource(snap, apply_assumptions=True)
    service = ExtenderService(source, ModelManager(initial_policy(policy)))
    app = create_app(service, Settings())
    if background:
        watch_load(service.gate.pacer("watch") if gate else None, background)
    torch.set_num_threads(1)
    settle_for_serving()  # as the real server does (GC freeze, switch interval)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


def pod_body(snap: ClusterSnapshot, i: int) -> dict[str, Any]:
    site = snap.sites[i % len(snap.sites)].name
    return {
        "metadata": {
            "name": f"bench-{i}",
            "namespace": "bench",
            "uid": f"uid-{i}",
            "labels": {ann.LABEL_MANAGED: "true"},
            "annotations": {
                ann.ANN_DATA_SOURCE_SITE: site,
                ann.ANN_LATENCY_BUDGET_MS: "1000",
                ann.ANN_INPUT_MB: "4",
            },
        },
        "spec": {
            "schedulerName": ann.SCHEDULER_NAME,
            "containers": [
                {"name": "t", "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}}
            ],
        },
    }


def measure(
    port: int, snap: ClusterSnapshot, requests: int, gap_s: float
) -> dict[str, dict[str, float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    names = [n.name for n in snap.nodes]
    out: dict[str, dict[str, float]] = {}
    for verb in ("filter", "prioritize"):
        for size in SIZES:
            bodies = [
                json.dumps({"Pod": pod_body(snap, i), "NodeNames": names[:size]}).encode()
                for i in range(50)
            ]
            times: list[float] = []
            server_ms: list[float] = []
            for i in range(requests + 50):  # the first 50 warm up
                body = bodies[i % len(bodies)]
                t0 = time.perf_counter()
                conn.request("POST", f"/{verb}", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                dt = time.perf_counter() - t0
                timing = resp.getheader("Server-Timing", "")
                if resp.status != 200:
                    raise SystemExit(f"/{verb} answered {resp.status}: {data[:300]!r}")
                time.sleep(gap_s)
                if i >= 50:
                    times.append(dt)
                    server_ms.append(float(timing.rsplit("dur=", 1)[1]))
            ms = np.array(times) * 1e3
            out[f"{verb}/{size}"] = {
                "p50_ms": float(np.percentile(ms, 50)),
                "p99_ms": float(np.percentile(ms, 99)),
                "mean_ms": float(ms.mean()),
                "server_p50_ms": float(np.percentile(server_ms, 50)),
                "server_p99_ms": float(np.percentile(server_ms, 99)),
                "requests": float(len(ms)),
            }
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--policy", default="auto")
    ap.add_argument("--nodes", type=int, default=max(SIZES))
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--gap-ms", type=float, default=5.0, help="pause between two requests")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument(
        "--background",
        type=int,
        default=0,
        metavar="N",
        help="N threads in the server doing watch-event work next to the verbs",
    )
    ap.add_argument(
        "--no-gate",
        action="store_true",
        help="the background threads do not wait on the verb gate (to weigh it)",
    )
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.nodes, args.policy, args.background, not args.no_gate)
        return
    port = free_port()
    cmd = [sys.executable, __file__, "--serve", str(port), "--nodes", str(args.nodes)]
    cmd += ["--background", str(args.background)] + (["--no-gate"] if args.no_gate else [])
    server = subprocess.Popen([*cmd, "--policy", args.policy], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/v1/models")
                models = json.loads(c.getresponse().read())
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the extender did not start") from None
                time.sleep(0.3)
        results = measure(port, snapshot(args.nodes), args.requests, args.gap_ms / 1e3)
    finally:
        server.terminate()
        server.wait(timeout=10)
    active = models["active"]
    report = {
        "benchmark": "extender_latency",
        "policy": f"{active['policy']} {active['version']}",
        "nodes_in_snapshot": args.nodes,
        "gap_ms": args.gap_ms,
        "background_threads": args.background,
        "background_gated": args.background > 0 and not args.no_gate,
        "results": results,
    }
    print(
        f"extender verb latency over loopback HTTP, one worker, policy {report['policy']}, "
        f"requests {args.gap_ms:g} ms apart"
        + (
            f", {args.background} watch-load threads "
            + ("waiting on the verb gate" if not args.no_gate else "not gated")
            if args.background
            else ""
        )
    )
    print(f"{'':<23}{'round trip':^18}{'server side':^18}")
    print(f"{'verb':<12}{'candidates':>11}{'p50 ms':>9}{'p99 ms':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for key, r in results.items():
        verb, size = key.split("/")
        print(
            f"/{verb:<11}{size:>11}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['server_p50_ms']:>9.2f}{r['server_p99_ms']:>9.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
