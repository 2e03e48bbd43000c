"""The demo end to end on the real dev cluster, and its dashboard in a real headless browser.

The demo runs against the test session's cluster (its fleet is left as it is), in its own
namespace, with the real extender, kube-scheduler and operator as local processes. The browser
is Debian's chromium; its screenshot is kept as a test artefact in artifacts/dashboard.png.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_allocator.demo import Demo, DemoSettings
from edge_allocator.demo.processes import alive, pid_of
from edge_allocator.demo.run import DemoResult
from edge_allocator.devcluster import DevCluster

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
BURST = 4

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def demo(devcluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    suffix = uuid.uuid4().hex[:6]
    settings = DemoSettings(
        namespace=f"demo-{suffix}",
        network_name=f"demo-{suffix}",
        burst=BURST,
        state_dir=tmp_path_factory.mktemp("demo"),
        cluster=devcluster,
        timeout_s=120,
    )
    d = Demo(settings)
    yield d
    d.down()


@pytest.fixture(scope="module")
def result(demo: Demo) -> DemoResult:
    return demo.up()


def test_every_task_is_placed_and_explained(result: DemoResult, demo: Demo) -> None:
    names = {t["metadata"]["name"] for t in result.tasks}
    assert {"camera-analytics", "batch-report", "sensor-aggregation"} <= names
    assert {f"inference-{i}" for i in range(BURST)} <= names
    assert "unknown-site" not in names  # its site is not in the fleet
    for t in result.tasks:
        status = t["status"]
        assert status.get("nodeName"), (t["metadata"]["name"], status)
        assert status["decision"]["recorded"] is True, (t["metadata"]["name"], status)
        assert status["nodeName"] in result.table
    camera = next(t for t in result.tasks if t["metadata"]["name"] == "camera-analytics")
    assert camera["status"]["networkLatencyMs"] <= camera["spec"]["latencyBudgetMs"]
    assert f"{len(names)} of {len(names)} EdgeTasks were placed" in result.summary
    assert re.search(r"(\d+) of \1 tasks with a latency budget landed within it", result.summary)
    header = result.table.splitlines()[0].split()
    assert {"NODE", "SITE", "SCORE", "LATENCY"} <= set(header)


def test_dashboard_shows_the_nodes_and_a_placement_in_a_browser(
    result: DemoResult, devcluster: DevCluster
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed: apt-get install -y chromium"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--window-size=1400,1100", "--virtual-time-budget=8000",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [chromium, *flags, f"--user-data-dir={profile}", "--dump-dom", result.dashboard_url],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        subprocess.run(
            [chromium, *flags, f"--user-data-dir={profile}", f"--screenshot={shot}",
             result.dashboard_url],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-loaded="true"' in html, "the page never rendered the state:\n" + html[-2000:]
    nodes = json.loads(devcluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    shown = set(re.findall(r'data-node="([^"]+)"', html))
    assert {n["metadata"]["name"] for n in nodes} <= shown
    camera = next(t for t in result.tasks if t["metadata"]["name"] == "camera-analytics")
    row = re.search(r'data-task="[^"]*/camera-analytics".*?</tr>', html, re.S)
    assert row, "no camera-analytics row in the placements table"
    assert camera["status"]["nodeName"] in row.group(0)
    assert re.search(r'class="node [a-z]+ selected"', html), "no placement highlighted"
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank frame


def test_down_stops_everything_it_started(demo: Demo, result: DemoResult) -> None:
    state = demo.s.state_dir
    pids = {n: pid_of(n, state) for n in ("extender", "operator", "dashboard")}
    assert pids["extender"] and pids["operator"]
    scheduler_pid = demo.cluster.schedulers_dir / "edge-allocator.pid"
    assert scheduler_pid.exists()
    demo.down()
    assert [n for n, pid in pids.items() if pid and alive(pid)] == []
    assert not scheduler_pid.exists()
    gone = demo.cluster.kubectl("get", "edgenetwork", demo.s.network_name, check=False)
    assert gone.returncode != 0
    assert demo.cluster.is_healthy(), "down() must leave a cluster it did not start running"
