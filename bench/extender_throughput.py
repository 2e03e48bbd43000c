"""End-to-end scheduling throughput: default profile vs the edge-allocator profile, one run.

Usage: python bench/extender_throughput.py [--nodes 1000] [--pods 2000] [--json out.json]
       [--verbs filter,prioritize,bind] [--inline-candidates N]

On the dev cluster (started if needed, never stopped here) it adds ``--nodes`` kwok nodes over
10 sites (tainted and labelled, so no other workload lands on them), then runs two fresh
kube-scheduler processes one after the other, each on ``--pods`` pending pods created before it
starts:

* ``bench-default``: the default plugins only;
* ``bench-edge``: the shipped ``deploy/scheduler`` profile with the extender (a real
  ``edge-allocator extender`` process, nodeCacheCapable, decisions written to the pods);
  ``--verbs`` overrides which extender verbs it calls, to weigh each one.

Every pod carries the latency budget (``--budget-ms`` from its data-source site) as the
required node affinity the operator writes, so both profiles filter the same sites.

Both get the same client QPS/burst (1000) so the API client limit caps neither. During the
edge rounds a thread probes the extender's ``/healthz`` every 50 ms (the liveness probe's view
under load). Throughput is
(pods - 1) / (time of the last binding - time of the first), timed by a watch on the pods;
the profiles alternate over ``--rounds`` rounds (pods split evenly) so that load drift on a
shared host affects both alike, and the per-round figures are summed.
The bench nodes and namespaces are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from extender_harness import SCHEDULER_CONFIG, Extender, edge_pod

from edge_allocator.cluster.affinity import budget_placement, require_terms
from edge_allocator.cluster.annotations import ANN_DECISION
from edge_allocator.cluster.topology import NetworkModel, Topology
from edge_allocator.devcluster import DevCluster
from edge_allocator.devcluster.fleet import NODE_CLASSES, node_manifest
from edge_allocator.extender.kubeapi import KubeApi, load_connection

BENCH_LABEL = "edge-allocator.io/bench"
SITES = [f"bench-site-{i}" for i in range(10)]
QPS = 1000


def bench_nodes(n: int) -> list[dict[str, Any]]:
    classes = [NODE_CLASSES[c] for c in ("small", "mid", "small", "server", "mid")]
    out = []
    for i in range(n):
        node = node_manifest(f"bench-{i:04d}", SITES[i % len(SITES)], classes[i % 5], {})
        node["metadata"]["labels"][BENCH_LABEL] = "true"
        node["spec"]["taints"] = [{"key": BENCH_LABEL, "value": "true", "effect": "NoSchedule"}]
        out.append(node)
    return out


def network() -> dict[str, Any]:
    links = [
        {"a": SITES[i], "b": SITES[i + 1], "latencyMs": 3 + i, "bandwidthMbps": 100 * (i + 1)}
        for i in range(len(SITES) - 1)
    ]
    return {
        "apiVersion": "edge-allocator.io/v1alpha1",
        "kind": "EdgeNetwork",
        "metadata": {"name": "zz-bench"},
        "spec": {"sites": [{"name": s} for s in SITES], "links": links},
    }


def budget_terms(budget_ms: float) -> dict[str, list[Any]]:
    """The required node-affinity terms the operator would write, per data-source site."""
    topo = Topology(NetworkModel.from_objects([network()]), [])
    return {site: list(budget_placement(topo, site, None, budget_ms).terms) for site in SITES}


def bench_pod(i: int, scheduler: str, budget_ms: float, terms: list[Any]) -> dict[str, Any]:
    pod = edge_pod(
        f"p-{i:05d}", site=SITES[i % len(SITES)], budget_ms=budget_ms, scheduler=scheduler
    )
    pod["spec"]["tolerations"] = [{"key": BENCH_LABEL, "operator": "Exists"}]
    pod["spec"]["nodeSelector"] = {BENCH_LABEL: "true"}
    require_terms(pod["spec"], terms)
    return pod


VERBS = ("filter", "prioritize", "bind")


def config(profile: str, extender_url: str | None, out: Path, verbs: set[str]) -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "profiles": [{"schedulerName": profile}],
    }
    if extender_url is not None:
        doc = yaml.safe_load(SCHEDULER_CONFIG.read_text())
        doc["profiles"][0]["schedulerName"] = profile
        ext = doc["extenders"][0]
        ext["urlPrefix"] = extender_url
        for verb in VERBS:
            if verb not in verbs:
                ext.pop(f"{verb}Verb", None)
            else:
                ext[f"{verb}Verb"] = verb
    doc["leaderElection"] = {"leaderElect": False}
    doc["clientConnection"] = {"qps": QPS, "burst": QPS}
    path = out / f"{profile}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


class BindWatch:
    """Records when each pod of a namespace is first seen bound, and first seen bound with its
    decision annotation (recorded)."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.bound: dict[str, float] = {}
        self.recorded: dict[str, float] = {}
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        while not self._stop:
            try:
                items, rv = self.api.list_all(path)
                for p in items:
                    self._see(p)
                for ev in self.api.watch(path, rv, timeout_s=60):
                    self._see(ev.get("object") or {})
                    if self._stop:
                        return
            except Exception:
                time.sleep(0.2)

    def _see(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        name = meta.get("name")
        if not name or not (pod.get("spec") or {}).get("nodeName"):
            return
        now = time.monotonic()
        self.bound.setdefault(name, now)
        if ANN_DECISION in (meta.get("annotations") or {}):
            self.recorded.setdefault(name, now)

    def stop(self) -> None:
        self._stop = True


class HealthProbe:
    """GETs /healthz every ``period_s`` while running and keeps each round trip's seconds."""

    def __init__(self, ext: Extender, period_s: float = 0.05) -> None:
        self.ext, self.period_s = ext, period_s
        self.times: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            t0 = time.perf_counter()
            try:
                ok = self.ext.http.get("/healthz", timeout=5).status_code == 200
            except Exception:
                ok = False
            self.times.append(time.perf_counter() - t0)
            self.failures += not ok

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


THREAD_CPU = "edge_allocator_thread_cpu_seconds_total"
GC_PAUSE = "edge_allocator_gc_pause_seconds_total"
WATCH_EVENTS = "edge_allocator_watch_events_total"
GATE_WAIT = "edge_allocator_background_wait_seconds_total"


SERVED = {  # per-round means: (sum, count) series of /metrics
    "prioritize_ms": (
        'edge_allocator_extender_request_seconds_sum{verb="prioritize"}',
        'edge_allocator_extender_request_seconds_count{verb="prioritize"}',
    ),
    "queue_ms": (
        "edge_allocator_verb_queue_seconds_sum",
        "edge_allocator_verb_queue_seconds_count",
    ),
    "policy_ms": ("edge_allocator_inference_seconds_sum", "edge_allocator_inference_seconds_count"),
}


def counters(ext: Extender) -> dict[str, dict[str, float]]:
    """The extender's CPU seconds by thread group, GC pause seconds by generation and watch
    events by collection and background waits for the verbs by work, from its /metrics:
    {"thread": {...}, "gc": {...}, "watch": {...}, "gate": {...}},
    and the raw series the per-round means come from ("series")."""
    out: dict[str, dict[str, float]] = {
        "thread": {},
        "gc": {},
        "watch": {},
        "gate": {},
        "series": {},
    }
    wanted = {name for pair in SERVED.values() for name in pair}
    for line in ext.http.get("/metrics").text.splitlines():
        name = line.rsplit(" ", 1)[0]
        if name in wanted:
            out["series"][name] = float(line.rsplit(" ", 1)[1])
        for key, name, label in (
            ("thread", THREAD_CPU, "thread"),
            ("gc", GC_PAUSE, "generation"),
            ("watch", WATCH_EVENTS, "kind"),
            ("gate", GATE_WAIT, "work"),
        ):
            if line.startswith(name + "{"):
                group = line.split(f'{label}="', 1)[1].split('"', 1)[0]
                out[key][group] = float(line.rsplit(" ", 1)[1])
    return out


def percentile_ms(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    ordered = sorted(xs)
    return 1e3 * ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


namespaces: list[str] = []


def run_profile(
    dc: DevCluster,
    api: KubeApi,
    profile: str,
    cfg: Path,
    pods: int,
    timeout_s: float,
    budget_ms: float,
    terms: dict[str, list[Any]],
    recorded: bool,
) -> dict[str, float]:
    """Schedule ``pods`` pending pods with ``profile``; with ``recorded`` also wait until every
    pod carries its decision annotation (however the extender writes it) and time that too."""
    ns = f"{profile}-{uuid.uuid4().hex[:6]}"
    namespaces.append(ns)
    dc.kubectl("create", "namespace", ns)
    items = [bench_pod(i, profile, budget_ms, terms[SITES[i % len(SITES)]]) for i in range(pods)]
    for start in range(0, pods, 500):  # pending: no scheduler serves this profile yet
        chunk = {"apiVersion": "v1", "kind": "List", "items": items[start : start + 500]}
        dc.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(chunk), timeout=600)
    watch = BindWatch(api, ns)
    t_start = time.monotonic()
    dc.start_scheduler(profile, cfg)
    deadline = time.monotonic() + timeout_s
    while len(watch.bound) < pods:
        if time.monotonic() > deadline:
            raise SystemExit(f"{profile}: only {len(watch.bound)}/{pods} pods bound in time")
        time.sleep(0.2)
    dc.stop_scheduler(profile)
    while recorded and len(watch.recorded) < pods and time.monotonic() < deadline:
        time.sleep(0.2)
    watch.stop()
    times = sorted(watch.bound.values())
    span = times[-1] - times[0]
    out = {
        "pods": float(pods),
        "pods_per_s": (pods - 1) / span if span > 0 else float("inf"),
        "first_to_last_s": span,
        "start_to_last_s": times[-1] - t_start,
    }
    if recorded:  # first binding -> last decision on record
        out["recorded"] = float(len(watch.recorded))
        out["first_to_last_recorded_s"] = max(watch.recorded.values(), default=times[0]) - times[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=2000)
    ap.add_argument("--policy", default="auto")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per profile")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--budget-ms", type=float, default=20.0, help="every pod's latency budget")
    ap.add_argument(
        "--verbs",
        default=None,
        help="comma-separated extender verbs to call (default: the shipped configuration's); "
        "without bind, kube-scheduler binds and decisions are PATCHed in the background",
    )
    ap.add_argument(
        "--inline-candidates",
        type=int,
        default=None,
        help="the extender's --inline-candidates (default: its own; 0 scores every "
        "/prioritize on the verb worker, to weigh the loop path)",
    )
    args = ap.parse_args()
    shipped = yaml.safe_load(SCHEDULER_CONFIG.read_text())["extenders"][0]
    verbs = (
        {v for v in args.verbs.split(",") if v}
        if args.verbs is not None
        else {v for v in VERBS if f"{v}Verb" in shipped}
    )
    if not verbs <= set(VERBS) or "prioritize" not in verbs:
        raise SystemExit(f"--verbs: choose from {', '.join(VERBS)}; prioritize is required")
    terms = budget_terms(args.budget_ms)

    dc = DevCluster()
    if not dc.is_healthy():
        dc.up()
    api = KubeApi(load_connection(str(dc.kubeconfig)))
    work = Path(tempfile.mkdtemp(prefix="bench-sched-"))
    repo = Path(__file__).resolve().parents[1]
    dc.kubectl(
        "apply", "--server-side", "-f", str(repo / "crds" / "edgenetworks.edge-allocator.io.yaml")
    )
    dc.kubectl("wait", "--for=condition=Established", "crd/edgenetworks.edge-allocator.io")
    dc.kubectl("apply", "-f", "-", input=json.dumps(network()))
    nodes = bench_nodes(args.nodes)
    print(f"adding {args.nodes} kwok nodes ...", file=sys.stderr)
    for start in range(0, len(nodes), 250):
        chunk = {"apiVersion": "v1", "kind": "List", "items": nodes[start : start + 250]}
        dc.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            input=json.dumps(chunk),
            timeout=600,
        )
    # without the bind verb nothing waits to carry a decision: write it at once
    grace = [] if "bind" in verbs else ["--bind-grace", "0"]
    inline = (
        []
        if args.inline_candidates is None
        else ["--inline-candidates", str(args.inline_candidates)]
    )
    ext = Extender(
        str(dc.kubeconfig), None, "--policy", args.policy, "--log-level", "WARNING", *grace, *inline
    )
    results: dict[str, Any] = {}
    try:
        wait_ready_nodes(dc, args.nodes, args.timeout)
        ext.start()
        edge_cfg = config("bench-edge", ext.url, work, verbs)
        default_cfg = config("bench-default", None, work, set())
        probe: HealthProbe | None = None
        runs: dict[str, list[dict[str, float]]] = {"default": [], "edge-allocator": []}
        health_times: list[float] = []
        extender_cpu_s = 0.0
        by_thread_s: dict[str, float] = {}
        gc_s: dict[str, float] = {}
        watch_events: dict[str, float] = {}
        gate_waits: dict[str, float] = {}
        health_failures = 0
        per_round = args.pods // args.rounds
        for r in range(args.rounds):  # alternate, so load drift on the host hits both alike
            for name, profile, cfg in (
                ("default", "bench-default", default_cfg),
                ("edge-allocator", "bench-edge", edge_cfg),
            ):
                if name == "edge-allocator":
                    probe = HealthProbe(ext)
                    assert ext.proc is not None
                    cpu_before = cpu_seconds(ext.proc.pid)
                    before = counters(ext)
                try:
                    out = run_profile(
                        dc,
                        api,
                        profile,
                        cfg,
                        per_round,
                        args.timeout,
                        args.budget_ms,
                        terms,
                        recorded=name == "edge-allocator",
                    )
                finally:
                    if probe is not None:
                        assert ext.proc is not None
                        round_cpu_s = cpu_seconds(ext.proc.pid) - cpu_before
                        extender_cpu_s += round_cpu_s
                        after = counters(ext)
                        for key, totals in (
                            ("thread", by_thread_s),
                            ("gc", gc_s),
                            ("watch", watch_events),
                            ("gate", gate_waits),
                        ):
                            for group, seconds in after[key].items():
                                totals[group] = (
                                    totals.get(group, 0.0) + seconds - before[key].get(group, 0.0)
                                )
                        round_cpu_ms = 1e3 * round_cpu_s / per_round
                        served = {
                            key: 1e3
                            * (after["series"].get(s, 0.0) - before["series"].get(s, 0.0))
                            / max(after["series"].get(c, 0.0) - before["series"].get(c, 0.0), 1)
                            for key, (s, c) in SERVED.items()
                        }
                        print(
                            f"  extender in round {r + 1}: CPU {round_cpu_ms:.2f} ms per pod, "
                            + ", ".join(f"{k} {v:.2f}" for k, v in served.items()),
                            file=sys.stderr,
                        )
                        probe.stop()
                        health_times.extend(probe.times)
                        health_failures += probe.failures
                        probe = None
                runs[name].append(out)
                print(f"round {r + 1} {name}: {out}", file=sys.stderr)
        for name, rs in runs.items():
            span = sum(x["first_to_last_s"] for x in rs)
            results[name] = {
                "pods": float(per_round * len(rs)),
                "pods_per_s": sum(x["pods"] - 1 for x in rs) / span,
                "first_to_last_s": span,
                "rounds": rs,
            }
            if all("first_to_last_recorded_s" in x for x in rs):
                rec_span = sum(x["first_to_last_recorded_s"] for x in rs)
                results[name]["recorded_pods_per_s"] = sum(x["recorded"] - 1 for x in rs) / rec_span
                results[name]["first_to_last_recorded_s"] = rec_span
        metrics = ext.http.get("/metrics").text
        policy = ext.http.get("/v1/models").json()["active"]
    finally:
        ext.stop()
        for profile in ("bench-default", "bench-edge"):
            dc.stop_scheduler(profile)
        for ns in namespaces:  # pods first, at once (no kubelet is waiting to stop them)
            dc.kubectl(
                "delete",
                "pods",
                "--all",
                "-n",
                ns,
                "--grace-period=0",
                "--force",
                "--wait=false",
                check=False,
                timeout=300,
            )
            dc.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        for ns in namespaces:
            dc.kubectl(
                "wait",
                "--for=delete",
                f"namespace/{ns}",
                "--timeout=180s",
                check=False,
                timeout=200,
            )
        dc.kubectl("delete", "nodes", "-l", f"{BENCH_LABEL}=true", "--wait=false", check=False)
        dc.kubectl("delete", "edgenetwork", "zz-bench", "--wait=false", check=False)
    ratio = results["edge-allocator"]["pods_per_s"] / results["default"]["pods_per_s"]

    def metric(prefix: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith(prefix)
        )

    decisions = metric('edge_allocator_decisions_total{outcome="written"}') + metric(
        'edge_allocator_decisions_total{outcome="with_binding"}'
    )

    def calls(verb: str) -> float:
        return metric(f'edge_allocator_extender_request_seconds_count{{verb="{verb}"}}')

    server_ms = {
        verb: 1e3
        * metric(f'edge_allocator_extender_request_seconds_sum{{verb="{verb}"}}')
        / max(calls(verb), 1)
        for verb in VERBS
    }
    edge_pods = results["edge-allocator"]["pods"]
    per_pod_ms = {verb: server_ms[verb] * calls(verb) / edge_pods for verb in VERBS}
    inference_ms = (
        1e3
        * metric("edge_allocator_inference_seconds_sum")
        / max(metric("edge_allocator_inference_seconds_count"), 1)
    )
    candidates = metric("edge_allocator_extender_candidates_sum") / max(
        metric("edge_allocator_extender_candidates_count"), 1
    )
    report = {
        "benchmark": "extender_throughput",
        "nodes": args.nodes,
        "pods": args.pods,
        "policy": f"{policy['policy']} {policy['version']}",
        "results": results,
        "ratio": ratio,
        "ratio_recorded": results["edge-allocator"].get("recorded_pods_per_s", float("nan"))
        / results["default"]["pods_per_s"],
        "decision_annotations_written": decisions,
        "verbs": sorted(verbs),
        "extender_server_mean_ms": server_ms,
        "extender_server_ms_per_pod": per_pod_ms,
        "extender_cpu_ms_per_pod": 1e3 * extender_cpu_s / edge_pods,
        "extender_cpu_ms_per_pod_by_thread": {
            g: 1e3 * s / edge_pods for g, s in sorted(by_thread_s.items(), key=lambda x: -x[1])
        },
        "gc_pause_ms_per_pod_by_generation": {g: 1e3 * s / edge_pods for g, s in gc_s.items()},
        "watch_events_per_pod": {k: n / edge_pods for k, n in watch_events.items()},
        "background_wait_ms_per_pod": {k: 1e3 * n / edge_pods for k, n in gate_waits.items()},
        "prioritize_on_loop_share": metric('edge_allocator_prioritize_scored_total{where="loop"}')
        / max(
            metric('edge_allocator_prioritize_scored_total{where="loop"}')
            + metric('edge_allocator_prioritize_scored_total{where="worker"}'),
            1,
        ),
        "verb_queue_mean_ms": 1e3
        * metric("edge_allocator_verb_queue_seconds_sum")
        / max(metric("edge_allocator_verb_queue_seconds_count"), 1),
        "policy_mean_ms": inference_ms,
        "healthz_under_load_ms": {
            "p50": percentile_ms(health_times, 50),
            "p99": percentile_ms(health_times, 99),
            "max": percentile_ms(health_times, 100),
            "probes": len(health_times),
            "failures": health_failures,
        },
        "mean_candidates": candidates,
    }
    print(
        f"scheduling throughput, {args.nodes} kwok nodes, {args.pods} pods per profile "
        f"in {args.rounds} alternating rounds"
    )
    print(f"{'profile':<16}{'pods/s':>9}{'first->last s':>15}")
    for name, r in results.items():
        print(f"{name:<16}{r['pods_per_s']:>9.1f}{r['first_to_last_s']:>15.1f}")
    print(f"ratio edge-allocator/default: {ratio:.2f} (policy {report['policy']})")
    edge = results["edge-allocator"]
    if "recorded_pods_per_s" in edge:
        print(
            f"with every decision on record: {edge['recorded_pods_per_s']:.1f} pods/s, "
            f"ratio {report['ratio_recorded']:.2f} (first binding -> last decision annotation)"
        )
    print(f"extender verbs called: {', '.join(sorted(verbs))}")
    print(
        "extender time per pod (server side, mean): "
        + ", ".join(f"{v} {per_pod_ms[v]:.2f} ms" for v in VERBS)
        + f" (policy {inference_ms:.2f} ms per call, {candidates:.0f} candidates); "
        f"decision annotations written: {decisions:.0f}"
    )
    print(
        f"extender process CPU per pod (all threads: verbs, watches, binder, writer): "
        f"{report['extender_cpu_ms_per_pod']:.2f} ms"
    )
    print(
        "  by thread: "
        + ", ".join(
            f"{g} {ms:.2f}"
            for g, ms in report["extender_cpu_ms_per_pod_by_thread"].items()
            if ms >= 0.05
        )
        + f"; a verb waited {report['verb_queue_mean_ms']:.2f} ms on average for the verb worker"
        + f" ({100 * report['prioritize_on_loop_share']:.0f}% of /prioritize scored on the loop)"
    )
    gc_ms = report["gc_pause_ms_per_pod_by_generation"]
    print(
        "  of it in cyclic GC (all threads wait): "
        + ", ".join(f"generation {g} {ms:.2f}" for g, ms in sorted(gc_ms.items()))
    )
    print(
        "  watch events per pod: "
        + ", ".join(f"{k} {n:.1f}" for k, n in sorted(report["watch_events_per_pod"].items()))
    )
    print(
        "  background work waited for the verbs (ms per pod): "
        + ", ".join(
            f"{k} {ms:.2f}" for k, ms in sorted(report["background_wait_ms_per_pod"].items())
        )
    )
    h = report["healthz_under_load_ms"]
    print(
        f"/healthz during the edge rounds: p50 {h['p50']:.1f} ms, p99 {h['p99']:.1f} ms, "
        f"max {h['max']:.1f} ms over {h['probes']} probes, {h['failures']} failed"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


def wait_ready_nodes(dc: DevCluster, n: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        out = dc.kubectl("get", "nodes", "-l", f"{BENCH_LABEL}=true", "-o", "json", timeout=300)
        items = json.loads(out.stdout)["items"]
        ready = sum(
            1
            for node in items
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in node.get("status", {}).get("conditions", [])
            )
        )
        if ready >= n:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"only {ready}/{n} bench nodes Ready")
        time.sleep(2)


if __name__ == "__main__":
    main()
