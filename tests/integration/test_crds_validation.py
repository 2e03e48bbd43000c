"""The API server itself rejects bad EdgeTasks and EdgeNetworks, with messages naming the field.

Every case goes through the real kube-apiserver (server-side dry run: full schema and CEL
validation, nothing stored), so these tests check the CRDs as users meet them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_allocator.devcluster import DevCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


def valid_task(name: str = "ok") -> dict[str, Any]:
    return {
        "apiVersion": "edge-allocator.io/v1alpha1",
        "kind": "EdgeTask",
        "metadata": {"name": name},
        "spec": {
            "dataSource": {"site": "site-a"},
            "latencyBudgetMs": 20,
            "inputMB": 10,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "example/app:1",
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ]
                }
            },
        },
    }


def valid_network(name: str = "net-ok") -> dict[str, Any]:
    return {
        "apiVersion": "edge-allocator.io/v1alpha1",
        "kind": "EdgeNetwork",
        "metadata": {"name": name},
        "spec": {
            "sites": [{"name": "x"}, {"name": "y"}, {"name": "z"}],
            "links": [
                {"a": "x", "b": "y", "latencyMs": 5, "bandwidthMbps": 100},
                {"a": "y", "b": "z", "latencyMs": 9, "bandwidthMbps": 50},
            ],
            "nodeOverrides": [{"node": "n1", "site": "z"}],
        },
    }


def dry_run(cluster: DevCluster, obj: dict[str, Any], namespace: str | None = None) -> Any:
    args = ["create", "--dry-run=server", "-o", "json", "-f", "-"]
    if namespace:
        args += ["-n", namespace]
    return cluster.kubectl(*args, input=json.dumps(obj), check=False)


def container(task: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = task["spec"]["template"]["spec"]["containers"][0]
    return result


Mutation = Callable[[dict[str, Any]], None]

TASK_CASES: list[tuple[str, Mutation, str]] = [
    ("no data source", lambda t: t["spec"].pop("dataSource"), "spec.dataSource: Required"),
    (
        "site and node both",
        lambda t: t["spec"]["dataSource"].update(node="n1"),
        "exactly one of spec.dataSource.site or spec.dataSource.node",
    ),
    (
        "neither site nor node",
        lambda t: t["spec"].update(dataSource={}),
        "exactly one of spec.dataSource.site or spec.dataSource.node",
    ),
    (
        "zero latency budget",
        lambda t: t["spec"].update(latencyBudgetMs=0),
        "spec.latencyBudgetMs: Invalid value: 0: spec.latencyBudgetMs in body should be "
        "greater than or equal to 1",
    ),
    (
        "latency budget as text",
        lambda t: t["spec"].update(latencyBudgetMs="fast"),
        'spec.latencyBudgetMs: Invalid value: "string": spec.latencyBudgetMs in body must be '
        "of type integer",
    ),
    (
        "too many attempts",
        lambda t: t["spec"].update(maxAttempts=100),
        "spec.maxAttempts: Invalid value: 100",
    ),
    (
        "no containers",
        lambda t: t["spec"]["template"]["spec"].update(containers=[]),
        "spec.template.spec.containers: Invalid value: 0",
    ),
    (
        "container without image",
        lambda t: container(t).pop("image"),
        "spec.template.spec.containers[0].image: Required value",
    ),
    (
        "no resource requests",
        lambda t: container(t).pop("resources"),
        "spec.template.spec.containers[0].resources: Required value",
    ),
    (
        "bad cpu quantity",
        lambda t: container(t)["resources"]["requests"].update(cpu="lots"),
        "spec.template.spec.containers[0].resources.requests.cpu",
    ),
    (
        "restart policy Always",
        lambda t: t["spec"]["template"]["spec"].update(restartPolicy="Always"),
        'spec.template.spec.restartPolicy: Unsupported value: "Always"',
    ),
    (
        "nodeName in the template",
        lambda t: t["spec"]["template"]["spec"].update(nodeName="n1"),
        "spec.template.spec.nodeName: Forbidden: spec.template.spec.nodeName must not be set",
    ),
    (
        "schedulerName in the template",
        lambda t: t["spec"]["template"]["spec"].update(schedulerName="x"),
        "spec.template.spec.schedulerName: Forbidden",
    ),
    (
        "duplicate container names",
        lambda t: t["spec"]["template"]["spec"]["containers"].append(copy.deepcopy(container(t))),
        'spec.template.spec.containers[1]: Duplicate value: {"name":"main"}',
    ),
    (
        "policy name with spaces",
        lambda t: t["spec"].update(policy="My Policy!"),
        'spec.policy: Invalid value: "My Policy!"',
    ),
    (
        "name longer than a label value",
        lambda t: t["metadata"].update(name="t" * 64),
        "metadata.name must be at most 63 characters",
    ),
]

NETWORK_CASES: list[tuple[str, Mutation, str]] = [
    (
        "link to an undeclared site",
        lambda n: n["spec"]["links"].append(
            {"a": "x", "b": "mars", "latencyMs": 1, "bandwidthMbps": 1}
        ),
        'spec.links: Invalid value: "object": every spec.links[].b must name a site declared',
    ),
    (
        "link from a site to itself",
        lambda n: n["spec"]["links"].append(
            {"a": "x", "b": "x", "latencyMs": 1, "bandwidthMbps": 1}
        ),
        'spec.links[2]: Invalid value: "object": a link must join two different sites',
    ),
    (
        "the same link twice, reversed",
        lambda n: n["spec"]["links"].append(
            {"a": "y", "b": "x", "latencyMs": 1, "bandwidthMbps": 1}
        ),
        "spec.links must not declare the same pair of sites twice",
    ),
    (
        "duplicate site names",
        lambda n: n["spec"]["sites"].append({"name": "x"}),
        'spec.sites[3]: Duplicate value: {"name":"x"}',
    ),
    (
        "zero bandwidth",
        lambda n: n["spec"]["links"][0].update(bandwidthMbps=0),
        "spec.links[0].bandwidthMbps: Invalid value: 0",
    ),
    (
        "negative latency",
        lambda n: n["spec"]["links"][0].update(latencyMs=-3),
        "spec.links[0].latencyMs: Invalid value: -3",
    ),
    (
        "override to an undeclared site",
        lambda n: n["spec"]["nodeOverrides"][0].update(site="mars"),
        "every spec.nodeOverrides[].site must name a site declared in spec.sites",
    ),
    ("no sites", lambda n: n["spec"].update(sites=[]), "spec.sites: Invalid value: 0"),
    (
        "zero intra-site bandwidth",
        lambda n: n["spec"]["sites"][0].update(intraBandwidthMbps=0),
        "spec.sites[0].intraBandwidthMbps: Invalid value: 0",
    ),
]


def test_valid_objects_are_accepted_with_defaults(crds: DevCluster, namespace: str) -> None:
    out = dry_run(crds, valid_task(), namespace)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["spec"]["maxAttempts"] == 3
    out = dry_run(crds, valid_network())
    assert out.returncode == 0, out.stderr
    sites = json.loads(out.stdout)["spec"]["sites"]
    assert [s["intraLatencyMs"] for s in sites] == [1, 1, 1]
    for policy in ("gnn", "gnn@2.1.0", "trimaran-tlp"):  # what get_policy resolves
        task = valid_task()
        task["spec"]["policy"] = policy
        out = dry_run(crds, task, namespace)
        assert out.returncode == 0, f"{policy}: {out.stderr}"


@pytest.mark.parametrize(("case", "mutate", "message"), TASK_CASES, ids=[c[0] for c in TASK_CASES])
def test_bad_edgetask_is_rejected_naming_the_field(
    crds: DevCluster, namespace: str, case: str, mutate: Mutation, message: str
) -> None:
    task = valid_task()
    mutate(task)
    out = dry_run(crds, task, namespace)
    assert out.returncode != 0, f"{case}: accepted"
    assert message in out.stderr, f"{case}: {out.stderr}"


@pytest.mark.parametrize(
    ("case", "mutate", "message"), NETWORK_CASES, ids=[c[0] for c in NETWORK_CASES]
)
def test_bad_edgenetwork_is_rejected_naming_the_field(
    crds: DevCluster, case: str, mutate: Mutation, message: str
) -> None:
    net = valid_network()
    mutate(net)
    out = dry_run(crds, net)
    assert out.returncode != 0, f"{case}: accepted"
    assert message in out.stderr, f"{case}: {out.stderr}"


def test_data_source_and_template_are_immutable(crds: DevCluster, namespace: str) -> None:
    crds.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(valid_task("imm")))
    cases = {
        "spec.dataSource is immutable": {"spec": {"dataSource": {"site": "site-b"}}},
        "spec.latencyBudgetMs is immutable": {"spec": {"latencyBudgetMs": 99}},
        "spec.template is immutable": {
            "spec": {"template": {"metadata": {"labels": {"new": "label"}}}}
        },
    }
    for message, patch in cases.items():
        out = crds.kubectl(
            "patch",
            "-n",
            namespace,
            "edgetask",
            "imm",
            "--type=merge",
            "-p",
            json.dumps(patch),
            check=False,
        )
        assert out.returncode != 0 and message in out.stderr, out.stderr
    ok = crds.kubectl(
        "patch",
        "-n",
        namespace,
        "edgetask",
        "imm",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"maxAttempts": 5}}),
        check=False,
    )
    assert ok.returncode == 0, ok.stderr


def test_kubectl_explain_describes_the_fields(crds: DevCluster) -> None:
    out = crds.kubectl("explain", "edgetask.spec.latencyBudgetMs").stdout
    assert "Largest acceptable network latency (ms)" in out
    out = crds.kubectl("explain", "edgenetwork.spec.links").stdout
    assert "bandwidthMbps" in out and "Undirected network links between sites" in out


def test_examples_are_valid(crds: DevCluster, namespace: str) -> None:
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            ns = namespace if doc["kind"] == "EdgeTask" else None
            out = dry_run(crds, doc, ns)
            assert out.returncode == 0, f"{path.name}: {out.stderr}"
