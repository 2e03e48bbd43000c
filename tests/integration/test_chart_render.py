"""The chart rendered by the real helm binary: lint, labels, schema errors, TLS, scheduler config.

No cluster: ``helm lint --strict`` and ``helm template`` only. What the API server thinks of the
output is in test_chart_cluster.py.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import subprocess
import tempfile
import threading
from base64 import b64decode
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_allocator.devcluster import paths

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "edge-allocator"
KUBE_VERSION = "1.34.4"
ALL_OPTIONS = [
    "networkPolicy.enabled=true",
    "grafanaDashboard.enabled=true",
    "metrics.serviceMonitor.enabled=true",
    "extender.adminToken.enabled=true",
    "scheduler.extenderFilter=true",
]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    binary = paths.bin_dir() / "helm"
    assert binary.exists(), f"{binary} missing: run `make binaries` first"
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=60, check=False
    )


@functools.cache
def _rendered(sets: tuple[str, ...], api_versions: tuple[str, ...]) -> str:
    args = ["template", "rel", str(CHART), "-n", "edge", "--kube-version", KUBE_VERSION]
    for s in sets:
        args += ["--set", s]
    for v in api_versions:
        args += ["--api-versions", v]
    out = helm(*args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def render(*sets: str, api_versions: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The chart's objects (a fresh copy; the helm output is cached per arguments)."""
    return [d for d in yaml.safe_load_all(_rendered(sets, api_versions)) if d]


def find(objs: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(hits) == 1, f"expected one {kind} *{suffix}, got {[o['metadata'] for o in hits]}"
    return hits[0]


def test_lint_strict_passes_with_defaults_and_every_option() -> None:
    for sets in ([], ALL_OPTIONS):
        args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
        for s in sets:
            args += ["--set", s]
        out = helm(*args)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "0 chart(s) failed" in out.stdout


def test_every_object_carries_the_recommended_labels() -> None:
    objs = render(*ALL_OPTIONS)
    kinds = {o["kind"] for o in objs}
    assert {"Deployment", "Service", "Secret", "ServiceAccount", "ClusterRole"} <= kinds
    assert {"PodDisruptionBudget", "NetworkPolicy", "ConfigMap", "RoleBinding"} <= kinds
    for o in objs:
        labels = o["metadata"]["labels"]
        for key in ("name", "instance", "version", "managed-by", "component", "part-of"):
            assert f"app.kubernetes.io/{key}" in labels, (o["kind"], o["metadata"]["name"], key)
        assert labels["app.kubernetes.io/instance"] == "rel"


def test_workloads_run_non_root_with_a_read_only_root() -> None:
    for d in (o for o in render() if o["kind"] == "Deployment"):
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, d["metadata"]["name"]
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and not sc["allowPrivilegeEscalation"]
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["requests"], c["name"]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("extender.replica=2", "at '/extender': additional properties 'replica' not allowed"),
        ("colour=blue", "at '': additional properties 'colour' not allowed"),
        ("extender.replicas=0", "at '/extender/replicas': minimum: got 0, want 1"),
        ("operator.logFormat=xml", "at '/operator/logFormat': value must be one of 'json'"),
        ("scheduler.image.tag=latest", "at '/scheduler/image/tag': 'latest' does not match"),
        ("extender.tls.existingSecret=Bad_Name", "at '/extender/tls/existingSecret': 'Bad_Name'"),
    ],
)
def test_bad_values_are_rejected_with_the_field_named(setting: str, expected: str) -> None:
    out = helm("template", "rel", str(CHART), "--kube-version", KUBE_VERSION, "--set", setting)
    assert out.returncode != 0, f"{setting} was accepted"
    assert "values don't meet the specifications of the schema" in out.stderr
    assert expected in out.stderr, out.stderr


def test_a_string_where_a_number_belongs_is_rejected() -> None:
    out = helm(
        "template", "rel", str(CHART), "--kube-version", KUBE_VERSION,
        "--set-string", "extender.replicas=two",
    )  # fmt: skip
    assert out.returncode != 0
    assert "at '/extender/replicas': got string, want integer" in out.stderr


def _serve_once(
    d: Path, ready: threading.Event, port: list[int], outcome: list[str], mutual: bool
) -> None:
    """Accept one TLS connection with the chart's serving certificate; ``mutual``: require a
    client certificate signed by the chart's CA, as the extender does with --client-ca."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "tls.crt", d / "tls.key")
    if mutual:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(d / "ca.crt")
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port.append(srv.getsockname()[1])
        ready.set()
        srv.settimeout(10)
        conn, _ = srv.accept()
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                peer = tls.getpeercert()
                outcome.append(dict(x[0] for x in peer["subject"])["commonName"] if peer else "-")
        except (ssl.SSLError, OSError) as err:
            outcome.append(f"refused: {err}")


def _handshake(d: Path, host: str, mutual: bool, client_cert: bool) -> str:
    ready, port, outcome = threading.Event(), list[int](), list[str]()
    server = threading.Thread(
        target=_serve_once, args=(d, ready, port, outcome, mutual), daemon=True
    )
    server.start()
    assert ready.wait(10)
    client = ssl.create_default_context(cafile=str(d / "ca.crt"))
    if client_cert:
        client.load_cert_chain(d / "client.crt", d / "client.key")
    with (
        contextlib.suppress(ssl.SSLError, OSError),
        socket.create_connection(("127.0.0.1", port[0]), timeout=10) as raw,
        client.wrap_socket(raw, server_hostname=host) as tls,
    ):
        assert tls.version() is not None  # the client verified chain and name
        tls.recv(1)  # lets a TLS 1.3 server's refusal of the client certificate arrive
    server.join(10)
    return outcome[0]


def test_generated_certificates_give_mutual_tls_for_the_service_name() -> None:
    objs = render()
    secret = find(objs, "Secret", "-extender-tls")
    assert secret["type"] == "kubernetes.io/tls"
    data = {k: b64decode(v) for k, v in secret["data"].items()}
    assert set(data) == {"tls.crt", "tls.key", "ca.crt", "client.crt", "client.key"}
    host = f"{find(objs, 'Service', '-extender')['metadata']['name']}.edge.svc"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, blob in data.items():
            (d / name).write_bytes(blob)
        assert _handshake(d, host, mutual=False, client_cert=False) == "-"
        assert _handshake(d, host, mutual=True, client_cert=True) == "kube-scheduler"
        assert _handshake(d, host, mutual=True, client_cert=False).startswith("refused")


def test_scheduler_presents_the_client_certificate_the_extender_requires() -> None:
    def wiring(objs: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
        ext = find(objs, "Deployment", "-extender")["spec"]["template"]["spec"]
        sched = find(objs, "Deployment", "-scheduler")["spec"]["template"]["spec"]
        config = yaml.safe_load(find(objs, "ConfigMap", "-scheduler")["data"]["config.yaml"])
        return ext["containers"][0]["args"], sched, config["extenders"][0]["tlsConfig"]

    objs = render()
    args, sched, tls = wiring(objs)
    assert "--client-ca=/etc/edge-allocator/tls/ca.crt" in args
    mounts = {m["name"]: m["mountPath"] for m in sched["containers"][0]["volumeMounts"]}
    assert Path(tls["certFile"]).parent == Path(tls["keyFile"]).parent
    assert mounts["client-tls"] == str(Path(tls["certFile"]).parent)
    (vol,) = [v for v in sched["volumes"] if v["name"] == "client-tls"]
    assert vol["secret"]["secretName"] == find(objs, "Secret", "-extender-tls")["metadata"]["name"]
    assert {i["path"] for i in vol["secret"]["items"]} == {"tls.crt", "tls.key"}
    ext_vol = next(
        v
        for v in find(objs, "Deployment", "-extender")["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "tls"
    )
    assert "client.key" not in {i["key"] for i in ext_vol["secret"]["items"]}

    args, sched, tls = wiring(render("extender.tls.clientAuth=false"))
    assert not [a for a in args if a.startswith("--client-ca")]
    assert "certFile" not in tls and "client-tls" not in {v["name"] for v in sched["volumes"]}


def test_an_existing_secret_replaces_the_generated_one_everywhere() -> None:
    objs = render("extender.tls.existingSecret=my-certs", "extender.tls.clientSecret=my-client")
    assert not [o for o in objs if o["kind"] == "Secret"]
    for d in (o for o in objs if o["kind"] == "Deployment"):
        secrets = [v["secret"]["secretName"] for v in d["spec"]["template"]["spec"]["volumes"]
                   if "secret" in v]  # fmt: skip
        want = ["my-certs", "my-client"] if d["metadata"]["name"].endswith("-scheduler") else []
        assert secrets == (want or ["my-certs"]), d["metadata"]["name"]
    out = helm("template", "rel", str(CHART), "--set", "extender.tls.existingSecret=my-certs")
    assert out.returncode != 0 and "extender.tls.clientSecret: required when" in out.stderr
    ok = helm("template", "rel", str(CHART), "--set", "extender.tls.existingSecret=my-certs",
              "--set", "extender.tls.clientAuth=false")  # fmt: skip
    assert ok.returncode == 0, ok.stderr


def test_scheduler_profile_calls_the_extender_service_over_https() -> None:
    objs = render("scheduler.extenderWeight=7", "scheduler.image.tag=v1.33.2")
    config = yaml.safe_load(find(objs, "ConfigMap", "-scheduler")["data"]["config.yaml"])
    service = find(objs, "Service", "-extender")
    assert config["kind"] == "KubeSchedulerConfiguration"
    assert [p["schedulerName"] for p in config["profiles"]] == ["edge-allocator"]
    (ext,) = config["extenders"]
    host = f"{service['metadata']['name']}.edge.svc"
    assert ext["urlPrefix"] == f"https://{host}:{service['spec']['ports'][0]['port']}"
    assert ext["enableHTTPS"] is True and ext["tlsConfig"]["serverName"] == host
    assert ext["weight"] == 7
    assert "clientConnection" not in config  # in-cluster credentials
    assert config["leaderElection"]["resourceNamespace"] == "edge"
    deploy = find(objs, "Deployment", "-scheduler")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.k8s.io/kube-scheduler:v1.33.2"
    mounted = {v["name"] for v in deploy["spec"]["template"]["spec"]["volumes"]}
    assert {"config", "tls"} <= mounted


def test_scheduler_keeps_the_repository_profile_unless_overridden() -> None:
    source = yaml.safe_load((ROOT / "deploy/scheduler/kube-scheduler-config.yaml").read_text())
    config = yaml.safe_load(find(render(), "ConfigMap", "-scheduler")["data"]["config.yaml"])
    assert config["profiles"] == source["profiles"]
    ours, theirs = config["extenders"][0], source["extenders"][0]
    for key in ("filterVerb", "prioritizeVerb", "bindVerb", "weight", "nodeCacheCapable"):
        assert ours.get(key) == theirs.get(key), key
    assert ours["ignorable"] == theirs["ignorable"]


def test_extender_filter_is_opt_in() -> None:
    def extender(*sets: str) -> dict[str, Any]:
        config = yaml.safe_load(
            find(render(*sets), "ConfigMap", "-scheduler")["data"]["config.yaml"]
        )
        ext: dict[str, Any] = config["extenders"][0]
        return ext

    assert "filterVerb" not in extender()
    assert extender("scheduler.extenderFilter=true")["filterVerb"] == "filter"
    assert "filterVerb" not in extender("scheduler.extenderFilter=false")


def test_operator_rbac_is_the_repository_rbac() -> None:
    source = {
        d["kind"]: d
        for d in yaml.safe_load_all((ROOT / "deploy/rbac/operator-rbac.yaml").read_text())
        if d
    }
    objs = render()
    assert find(objs, "ClusterRole", "-operator")["rules"] == source["ClusterRole"]["rules"]
    assert find(objs, "Role", "-operator-leases")["rules"] == source["Role"]["rules"]
    binding = find(objs, "ClusterRoleBinding", "-operator")
    account = find(objs, "Deployment", "-operator")["spec"]["template"]["spec"]
    assert binding["subjects"][0]["name"] == account["serviceAccountName"]


def test_scheduler_config_change_rolls_the_scheduler() -> None:
    def checksum(*sets: str) -> str:
        text = _rendered.__wrapped__(sets, ())  # a fresh helm run each time
        objs = [d for d in yaml.safe_load_all(text) if d]
        deploy = find(objs, "Deployment", "-scheduler")
        value: str = deploy["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    assert checksum() == checksum()  # stable although the TLS secret is regenerated
    assert checksum() != checksum("scheduler.extenderWeight=9")


def test_disabling_the_scheduler_removes_all_of_its_objects() -> None:
    objs = render("scheduler.enabled=false")
    leftovers = [
        (o["kind"], o["metadata"]["name"])
        for o in objs
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == "scheduler"
    ]
    assert leftovers == []


def test_service_monitor_only_where_its_crd_exists_and_it_selects_the_service() -> None:
    assert not [o for o in render(*ALL_OPTIONS) if o["kind"] == "ServiceMonitor"]
    objs = render(*ALL_OPTIONS, api_versions=("monitoring.coreos.com/v1/ServiceMonitor",))
    services = [o for o in objs if o["kind"] == "Service"]
    for component, service_suffix in (("extender", "-extender"), ("operator", "-operator-metrics")):
        monitor = find(objs, "ServiceMonitor", f"-{component}")
        selector = monitor["spec"]["selector"]["matchLabels"]
        selected = [o for o in services if selector.items() <= o["metadata"]["labels"].items()]
        assert [o["metadata"]["name"] for o in selected] == [
            find(objs, "Service", service_suffix)["metadata"]["name"]
        ], component
        port_names = {p["name"] for p in selected[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names
        pods = find(objs, "Deployment", f"-{component}")["spec"]["template"]["metadata"]
        assert selected[0]["spec"]["selector"].items() <= pods["labels"].items(), component


def test_network_policy_admits_the_scheduler_and_operator_pods() -> None:
    objs = render("networkPolicy.enabled=true")
    policy = find(objs, "NetworkPolicy", "-extender")
    peers = policy["spec"]["ingress"][0]["from"]
    for component in ("scheduler", "operator"):
        pod_labels = find(objs, "Deployment", f"-{component}")["spec"]["template"]["metadata"]
        assert any(
            p["podSelector"]["matchLabels"].items() <= pod_labels["labels"].items() for p in peers
        ), component


def test_admin_token_is_generated_and_given_to_the_extender_only() -> None:
    assert not [o for o in render() if o["metadata"]["name"].endswith("-extender-admin")]
    objs = render("extender.adminToken.enabled=true")
    secret = find(objs, "Secret", "-extender-admin")
    assert len(b64decode(secret["data"]["token"])) == 40
    for d in (o for o in objs if o["kind"] == "Deployment"):
        env = d["spec"]["template"]["spec"]["containers"][0].get("env", [])
        refs = [e for e in env if e["name"] == "EDGE_ALLOCATOR_ADMIN_TOKEN"]
        expected = 1 if d["metadata"]["name"].endswith("-extender") else 0
        assert len(refs) == expected, d["metadata"]["name"]
    named = render("extender.adminToken.enabled=true", "extender.adminToken.existingSecret=mine")
    assert not [o for o in named if o["metadata"]["name"].endswith("-extender-admin")]


def test_operator_gets_the_extender_admin_token_when_the_admin_api_needs_one() -> None:
    def operator(objs: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
        spec = find(objs, "Deployment", "-operator")["spec"]["template"]["spec"]
        return spec["containers"][0]["args"], spec

    args, _ = operator(render())
    assert not [a for a in args if a.startswith("--extender-token-file")]
    objs = render("extender.adminToken.enabled=true")
    args, spec = operator(objs)
    (flag,) = [a for a in args if a.startswith("--extender-token-file=")]
    path = Path(flag.split("=", 1)[1])
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["extender-token"] == str(path.parent)
    (vol,) = [v for v in spec["volumes"] if v["name"] == "extender-token"]
    secret = find(objs, "Secret", "-extender-admin")
    assert vol["secret"]["secretName"] == secret["metadata"]["name"]
    assert vol["secret"]["items"] == [{"key": "token", "path": path.name}]
    extender = find(objs, "Deployment", "-extender")["spec"]["template"]["spec"]["containers"][0]
    ref = extender["env"][0]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret["metadata"]["name"], "key": "token"}


def test_object_names_fit_kubernetes_limits_with_the_longest_release_name() -> None:
    """Service names are DNS-1035 labels (at most 63 characters); other names are DNS-1123
    subdomains (at most 253)."""
    objs = render(*ALL_OPTIONS, f"fullnameOverride={'a' * 63}")
    services = [o["metadata"]["name"] for o in objs if o["kind"] == "Service"]
    assert len(services) == len(set(services)) == 2  # the extender's and the operator's metrics
    assert [n for n in services if len(n) > 63] == []
    assert [o["metadata"]["name"] for o in objs if len(o["metadata"]["name"]) > 253] == []


def test_extender_may_list_the_edgetasks_its_dashboard_shows() -> None:
    role = find(render(), "ClusterRole", "-extender")
    rules = [
        r for r in role["rules"]
        if "edge-allocator.io" in r["apiGroups"] and "edgetasks" in r["resources"]
    ]  # fmt: skip
    assert rules and "list" in rules[0]["verbs"]
    assert not {"create", "update", "patch", "delete"} & set(rules[0]["verbs"])


def test_a_model_version_is_a_valid_initial_policy() -> None:
    assert helm("lint", "--strict", str(CHART), "--set", "extender.model=gnn@2.1.0").returncode == 0
    bad = helm("lint", "--strict", str(CHART), "--set", "extender.model=gnn@@x")
    assert bad.returncode != 0 and "/extender/model" in bad.stdout + bad.stderr


def test_the_shadow_model_is_passed_as_the_flag() -> None:
    def extender_args(*sets: str) -> list[str]:
        deploy = find(render(*sets), "Deployment", "-extender")
        args: list[str] = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        return args

    assert not [a for a in extender_args() if a.startswith("--shadow-policy")]
    assert "--shadow-policy=gnn@2.1.0" in extender_args("extender.shadowModel=gnn@2.1.0")
    bad = helm("lint", "--strict", str(CHART), "--set", "extender.shadowModel=a/b.pt")
    assert bad.returncode != 0 and "/extender/shadowModel" in bad.stdout + bad.stderr
