"""Run the extender as a real process next to a second kube-scheduler on the dev cluster.

Shared by the extender e2e tests and the throughput benchmark: the extender is started with
``edge-allocator extender`` on a free port of 127.0.0.1, and the ``edge-allocator`` profile from
``deploy/scheduler`` is pointed at it and run by the dev cluster as its own kube-scheduler.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from edge_allocator.cluster import annotations as ann
from edge_allocator.devcluster.processes import free_port

REPO = Path(__file__).resolve().parents[2]
SCHEDULER_CONFIG = REPO / "deploy" / "scheduler" / "kube-scheduler-config.yaml"


class Extender:
    """One ``edge-allocator extender`` process; ``kill``/``start`` keep the same port."""

    def __init__(self, kubeconfig: str, port: int | None = None, *extra: str) -> None:
        self.kubeconfig = kubeconfig
        self.port = port or free_port()
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="extender-", suffix=".log")[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def start(self, timeout_s: float = 60) -> None:
        cmd = [
            sys.executable,
            "-m",
            "edge_allocator",
            "extender",
            "--port",
            str(self.port),
            "--kubeconfig",
            self.kubeconfig,
            *self.extra,
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"extender exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                if self.http.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"extender not ready after {timeout_s}s: {self.log_tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]


def scheduler_config(extender_url: str, out_dir: Path, *, filter_verb: bool = False) -> Path:
    """The shipped configuration, pointed at ``extender_url``, without leader election;
    ``filter_verb``: also the opt-in /filter (budget check for pods made without the operator)."""
    doc: dict[str, Any] = yaml.safe_load(SCHEDULER_CONFIG.read_text())
    doc["extenders"][0]["urlPrefix"] = extender_url
    if filter_verb:
        doc["extenders"][0]["filterVerb"] = "filter"
    doc["leaderElection"] = {"leaderElect": False}
    path = out_dir / "edge-allocator-scheduler.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def edge_pod(
    name: str,
    *,
    site: str,
    budget_ms: float | None = None,
    cpu: str = "100m",
    mem: str = "64Mi",
    scheduler: str = ann.SCHEDULER_NAME,
    policy: str | None = None,
) -> dict[str, Any]:
    annotations = {ann.ANN_DATA_SOURCE_SITE: site, ann.ANN_INPUT_MB: "5"}
    if budget_ms is not None:
        annotations[ann.ANN_LATENCY_BUDGET_MS] = str(budget_ms)
    if policy is not None:
        annotations[ann.ANN_POLICY] = policy
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {ann.LABEL_MANAGED: "true", ann.LABEL_TASK: name},
            "annotations": annotations,
        },
        "spec": {
            "schedulerName": scheduler,
            "containers": [
                {
                    "name": "task",
                    "image": "registry.local/edge-task:1",
                    "resources": {"requests": {"cpu": cpu, "memory": mem}},
                }
            ],
        },
    }


def pod_list(pods: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": pods})
