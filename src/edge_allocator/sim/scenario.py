"""Scenario files: topology, workload and dynamics of a simulated edge cluster, validated.

A scenario is YAML checked by pydantic; a bad file fails with the file name and the dotted path
of every offending field (``workload.task_classes.0.cpu_request_m``) and the rule it broke.
Sizes are generative (a node count, site sizes, ranges), so one family file can be run at 10
or 1,000 nodes with :meth:`Scenario.resized`, and offered load is a fraction of cluster CPU, so
the pressure stays comparable across sizes.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Range = tuple[float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_range(r: Range, name: str) -> None:
    if r[0] > r[1]:
        raise ValueError(f"{name}: lower bound {r[0]} is above upper bound {r[1]}")


class NodeClass(_Strict):
    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)
    cpu_m: int = Field(gt=0, description="capacity in millicores")
    mem_mib: int = Field(gt=0)
    at: Literal["edge", "hub", "any"] = "any"


class Topology(_Strict):
    nodes: int = Field(ge=1, le=100_000, description="total node count, hub included")
    nodes_per_site: tuple[int, int] = (2, 8)
    shape: Literal["star", "ring", "tree", "line", "mesh"] = "tree"
    tree_fanout: int = Field(default=3, ge=1)
    mesh_extra_links: float = Field(default=0.5, ge=0, description="extra chords per site")
    hub_nodes: int = Field(default=0, ge=0, description="nodes at the central site 0")
    hub_latency_ms: Range = (10.0, 30.0)
    hub_bandwidth_mbps: Range = (1000.0, 10000.0)
    intra_latency_ms: float = Field(default=0.5, ge=0)
    link_latency_ms: Range = (1.0, 10.0)
    link_bandwidth_mbps: Range = (100.0, 1000.0)
    node_classes: list[NodeClass] = Field(min_length=1)

    @model_validator(mode="after")
    def _ranges(self) -> Topology:
        if self.nodes_per_site[0] < 1:
            raise ValueError("nodes_per_site: sites need at least one node")
        _check_range(
            (float(self.nodes_per_site[0]), float(self.nodes_per_site[1])), "nodes_per_site"
        )
        for name in (
            "hub_latency_ms",
            "hub_bandwidth_mbps",
            "link_latency_ms",
            "link_bandwidth_mbps",
        ):
            r: Range = getattr(self, name)
            _check_range(r, name)
            if r[0] < 0 or ("bandwidth" in name and r[0] <= 0):
                raise ValueError(f"{name}: must be positive")
        if self.hub_nodes >= self.nodes:
            raise ValueError("hub_nodes: must leave at least one edge node")
        if self.hub_nodes and not any(c.at in ("hub", "any") for c in self.node_classes):
            raise ValueError("node_classes: hub_nodes > 0 needs a class with at: hub or any")
        if not any(c.at in ("edge", "any") for c in self.node_classes):
            raise ValueError("node_classes: need a class with at: edge or any")
        return self


class PoissonArrivals(_Strict):
    process: Literal["poisson"] = "poisson"


class BurstyArrivals(_Strict):
    """Two-state modulated Poisson: bursts at ``burst_factor`` times the mean rate."""

    process: Literal["bursty"]
    burst_factor: float = Field(default=4.0, gt=1)
    on_fraction: float = Field(default=0.15, gt=0, lt=1)
    cycle_s: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _feasible(self) -> BurstyArrivals:
        if self.burst_factor * self.on_fraction >= 1.0:
            raise ValueError("burst_factor * on_fraction must be < 1 (the mean rate is fixed)")
        return self


class DiurnalArrivals(_Strict):
    """Sinusoidal rate ``mean * (1 + amplitude * sin(2 pi t / period_s))``."""

    process: Literal["diurnal"]
    period_s: float = Field(default=600.0, gt=0)
    amplitude: float = Field(default=0.6, ge=0, lt=1)


Arrivals = Annotated[
    PoissonArrivals | BurstyArrivals | DiurnalArrivals, Field(discriminator="process")
]


class Sources(_Strict):
    """Where task input comes from: a node chosen uniformly, by Zipf rank, or from hotspots."""

    distribution: Literal["uniform", "zipf", "hotspot"] = "uniform"
    zipf_s: float = Field(default=1.1, gt=0)
    hot_fraction: float = Field(default=0.1, gt=0, le=1)
    hot_share: float = Field(default=0.7, ge=0, le=1)
    edge_only: bool = True


class TaskClass(_Strict):
    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)
    cpu_request_m: tuple[int, int]
    mem_request_mib: tuple[int, int]
    work_cpu_s: float = Field(gt=0, description="mean CPU-seconds (exponential)")
    input_mb: Range = (0.0, 0.0)
    latency_budget_ms: float | None = Field(default=None, gt=0)
    deadline_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ranges(self) -> TaskClass:
        for name in ("cpu_request_m", "mem_request_mib"):
            lo, hi = getattr(self, name)
            if lo <= 0:
                raise ValueError(f"{name}: must be positive")
            _check_range((float(lo), float(hi)), name)
        _check_range(self.input_mb, "input_mb")
        if self.input_mb[0] < 0:
            raise ValueError("input_mb: must be >= 0")
        return self


class Workload(_Strict):
    tasks: int = Field(ge=1, le=1_000_000)
    load: float = Field(gt=0, le=2.0, description="offered task CPU / cluster cores")
    arrivals: Arrivals = Field(default_factory=PoissonArrivals)
    sources: Sources = Field(default_factory=Sources)
    task_classes: list[TaskClass] = Field(min_length=1)


class BackgroundLoad(_Strict):
    """Per-node CPU load outside the scheduler's view (an Ornstein-Uhlenbeck drift)."""

    mean: float = Field(default=0.1, ge=0, lt=1)
    heterogeneity: float = Field(default=0.5, ge=0)
    volatility: float = Field(default=0.05, ge=0)
    reversion: float = Field(default=0.2, gt=0, le=1)
    tick_s: float = Field(default=10.0, gt=0)


class Failures(_Strict):
    mtbf_s: float = Field(gt=0, description="mean time between failures, per node")
    mttr_s: float = Field(gt=0, description="mean time to repair")


class Metrics(_Strict):
    """How the scheduler sees measured usage: as metrics.k8s.io serves it, an average over
    the last ``interval_s`` seconds refreshed every ``interval_s`` (metrics-server's default
    ``--metric-resolution`` is 15 s). Requests and pod counts stay exact, as in the
    scheduler's own cache. ``interval_s: 0`` shows exact instantaneous usage instead."""

    interval_s: float = Field(default=15.0, ge=0, le=600)


class Network(_Strict):
    """How transfers use the links. ``none``: every transfer gets its path's bottleneck
    bandwidth however many share it, and the task starts at once (the transfer time is added
    to its completion). ``max-min``: concurrent transfers share each link max-min fairly along
    their paths (:mod:`edge_allocator.sim.network`), and a task starts executing when its input
    has arrived (it holds its requests on the node meanwhile)."""

    sharing: Literal["none", "max-min"] = "none"


class Dynamics(_Strict):
    background: BackgroundLoad = Field(default_factory=BackgroundLoad)
    failures: Failures | None = None
    metrics: Metrics = Field(default_factory=Metrics)
    network: Network = Field(default_factory=Network)


class Scenario(_Strict):
    name: str = Field(min_length=1)
    family: str = Field(min_length=1)
    split: Literal["train", "heldout"] = "train"
    description: str = ""
    topology: Topology
    workload: Workload
    dynamics: Dynamics = Field(default_factory=Dynamics)

    def resized(self, nodes: int, tasks: int | None = None, load_scale: float = 1.0) -> Scenario:
        """The same family at ``nodes`` nodes (hub size kept below the total), optionally
        with the offered load multiplied by ``load_scale`` (named ``<family>-<nodes>@<x>``)."""
        topo = self.topology.model_copy(
            update={"nodes": nodes, "hub_nodes": min(self.topology.hub_nodes, max(nodes // 5, 0))}
        )
        work = self.workload
        if tasks is not None:
            work = work.model_copy(update={"tasks": tasks})
        name = f"{self.family}-{nodes}"
        if load_scale != 1.0:
            load = work.load * load_scale
            if not 0 < load <= 2.0:
                raise ValueError(f"workload.load: {work.load} x {load_scale} is outside (0, 2]")
            work = work.model_copy(update={"load": load})
            name += f"@{load_scale:g}"
        return self.model_copy(update={"topology": topo, "workload": work, "name": name})


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the fields."""


def parse_scenario(data: object, source: str = "<scenario>") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {loc}: {err['msg']}")
        raise ScenarioError(f"{source}: invalid scenario\n" + "\n".join(lines)) from None


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A scenario from a YAML path, or a built-in one by name (``factory-floor``)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        try:
            text = p.read_text()
        except OSError as exc:
            raise ScenarioError(f"{p}: cannot read scenario file: {exc}") from None
        source = str(p)
    else:
        res = resources.files("edge_allocator.sim.scenarios") / f"{name_or_path}.yaml"
        if not res.is_file():
            raise ScenarioError(
                f"unknown scenario {name_or_path!r}; built-in: {', '.join(builtin_scenarios())}"
            )
        text = res.read_text()
        source = f"built-in scenario {name_or_path}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {exc}") from None
    return parse_scenario(data, source)


def builtin_scenarios() -> list[str]:
    root = resources.files("edge_allocator.sim.scenarios")
    return sorted(f.name[: -len(".yaml")] for f in root.iterdir() if f.name.endswith(".yaml"))
