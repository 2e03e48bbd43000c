"""The shipped KubeSchedulerConfiguration: profile, extender verbs, and the weight rule."""

from __future__ import annotations

from pathlib import Path

import yaml

from edge_allocator.cluster.annotations import SCHEDULER_NAME
from edge_allocator.extender.scoring import MAX_SCORE

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "scheduler" / "kube-scheduler-config.yaml"

# Default score plugins of kubescheduler.config.k8s.io/v1 (Kubernetes 1.34,
# pkg/scheduler/apis/config/v1/default_plugins.go); a plugin without a weight counts 1.
DEFAULT_SCORE_WEIGHTS = {
    "TaintToleration": 3,
    "NodeAffinity": 2,
    "PodTopologySpread": 2,
    "InterPodAffinity": 2,
    "NodeResourcesFit": 1,
    "NodeResourcesBalancedAllocation": 1,
    "ImageLocality": 1,
    "VolumeBinding": 1,
}
MAX_NODE_SCORE = 100


def test_profile_and_extender() -> None:
    doc = yaml.safe_load(CONFIG.read_text())
    assert doc["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert doc["kind"] == "KubeSchedulerConfiguration"
    assert [p["schedulerName"] for p in doc["profiles"]] == [SCHEDULER_NAME]
    (ext,) = doc["extenders"]
    # the budget is the pods' node affinity: no /filter round trip per pod (opt-in, see chart)
    assert "filterVerb" not in ext and ext["prioritizeVerb"] == "prioritize"
    assert ext["bindVerb"] == "bind"
    assert ext["nodeCacheCapable"] is True and ext["ignorable"] is True
    assert doc["leaderElection"]["resourceName"] != "kube-scheduler"


def test_one_extender_step_outweighs_every_plugin() -> None:
    doc = yaml.safe_load(CONFIG.read_text())
    weight = doc["extenders"][0]["weight"]
    plugins = doc["profiles"][0].get("plugins", {})
    assert not plugins, "the weight rule assumes the default score plugins and weights"
    one_step = weight * (MAX_NODE_SCORE // MAX_SCORE)  # kube-scheduler scales 0..10 to 0..100
    plugin_spread = MAX_NODE_SCORE * sum(DEFAULT_SCORE_WEIGHTS.values())
    assert one_step > plugin_spread
    assert (weight - 1) * (MAX_NODE_SCORE // MAX_SCORE) <= plugin_spread  # and no larger
