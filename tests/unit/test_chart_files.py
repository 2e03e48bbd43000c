"""The chart's static files agree with the repository: CRDs, schema coverage, versions.

No helm binary needed: these guard the copies the chart carries (CRDs) and the schema's
promise that every values key is declared and unknown keys are refused.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "edge-allocator"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def test_chart_crds_are_the_repository_crds() -> None:
    source = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    copied = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert source, "crds/ holds no CRD manifests"
    assert sorted(copied) == sorted(source), "charts/edge-allocator/crds/ lists other files"
    stale = [name for name in source if copied[name] != source[name]]
    assert not stale, f"chart CRDs differ from crds/: {stale}; run: cp crds/*.yaml {CHART}/crds/"


def _objects_with_properties(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append((path, node))
        for key, value in node.items():
            found += _objects_with_properties(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _objects_with_properties(value, f"{path}[{i}]")
    return found


def test_every_schema_object_refuses_unknown_keys() -> None:
    objects = _objects_with_properties(_schema())
    assert len(objects) > 10
    open_ones = [path for path, obj in objects if obj.get("additionalProperties") is not False]
    assert not open_ones, f"objects without additionalProperties: false: {open_ones}"


def _declared(values: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Paths of values.yaml keys the schema does not declare."""
    if not isinstance(values, dict) or "properties" not in schema:
        return []
    missing = []
    for key, value in values.items():
        sub = schema["properties"].get(key)
        if sub is None:
            missing.append(f"{path}.{key}")
        else:
            missing += _declared(value, sub, f"{path}.{key}")
    return missing


def test_every_values_key_is_declared_in_the_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert _declared(values, _schema(), "values") == []


def test_required_keys_have_defaults() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def check(v: Any, s: dict[str, Any], path: str) -> list[str]:
        out = [f"{path}.{k}" for k in s.get("required", []) if k not in v]
        for k, sub in s.get("properties", {}).items():
            if isinstance(v, dict) and isinstance(v.get(k), dict):
                out += check(v[k], sub, f"{path}.{k}")
        return out

    assert check(values, _schema(), "values") == []


def test_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_grafana_dashboard_queries_metrics_the_extender_exports() -> None:
    from edge_allocator.extender.metrics import ExtenderMetrics

    dashboard = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"edge_allocator_[a-z_]+", e)}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    exported = {
        family.name + suffix
        for family in ExtenderMetrics().registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }
    assert used, "the dashboard queries no edge_allocator_ metric"
    assert sorted(used - exported) == [], f"dashboard metrics not exported: {used - exported}"


def test_chart_reuses_the_repository_rbac_and_scheduler_config() -> None:
    pairs = {
        ROOT / "deploy" / "rbac" / "operator-rbac.yaml": CHART / "files/rbac/operator-rbac.yaml",
        ROOT / "deploy" / "scheduler" / "kube-scheduler-config.yaml": (
            CHART / "files/kube-scheduler-config.yaml"
        ),
    }
    stale = [str(copy) for src, copy in pairs.items() if copy.read_bytes() != src.read_bytes()]
    assert not stale, f"chart copies differ from their source: {stale}"
