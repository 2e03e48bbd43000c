"""Scenario files: topology, workload and dynamics of a simulated edge cluster, validated.

A scenario is YAML checked by pydantic; a bad file fails with the file name and the dotted path
of every offending field (``workload.task_classes.0.cpu_request_m``) and the rule it broke.
Sizes are generative (a node count, site sizes, ranges), so one family file can be run at 10
or 1,000 nodes with :meth:`Scenario.resized`, and offered load is a fraction of cluster CPU, so
the pressure stays comparable across sizes.

Every field added for fidelity (per-site overrides, explicit links, several hubs, result
transfers, intra-site bandwidth, link and site failures, per-class arrivals, sources and CPU
speeds) defaults to the behaviour before it existed, so an older file gives the same results.
Checks that span sections name the full dotted path too (``sites.0.node_classes.big``).
Numbers must be finite (``.nan`` is refused everywhere, ``.inf`` except where it means no limit:
bandwidths, latency budgets, deadlines, mean times between failures), and a YAML mapping may
not give one key twice.
"""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

Range = tuple[float, float]


def _not_nan(v: float) -> float:
    if math.isnan(v):
        raise ValueError("Input should be a number, not nan")
    return v


Unbounded = Annotated[float, Field(allow_inf_nan=True), AfterValidator(_not_nan)]
"""A float that may be ``.inf`` where that means no limit (a bandwidth, a budget, a deadline,
a mean time between failures); every other number must be finite."""
UnboundedRange = tuple[float, Unbounded]

ALLOCATABLE_CPU = 0.95
"""A node's allocatable CPU is this share of its capacity, in whole millicores (rounded down)."""
ALLOCATABLE_MEM = 0.92
"""A node's allocatable memory is this share of its capacity, in whole MiB (rounded down)."""
MAX_QUANTITY = 10**12
"""The largest capacity or request (millicores, MiB) a scenario may give: summed over 100,000
nodes it still fits the simulator's 64-bit integers."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        """``nodes: true`` is a typo, not 1 (pydantic takes a bool for a number)."""
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name) if isinstance(name, str) else None
                if field is None or field.annotation is bool:
                    continue
                # a number or a range ([true, 3]); a site's class weights are checked there
                for v in [value, *(value if isinstance(value, list | tuple) else ())]:
                    if isinstance(v, bool):
                        raise ValueError(f"{name}: {str(v).lower()} is not a valid value here")
        return data


def _check_range(r: Range, name: str) -> None:
    if r[0] > r[1]:
        raise ValueError(f"{name}: lower bound {r[0]} is above upper bound {r[1]}")


def _as_range(v: Any) -> Any:
    """A bare number ``x`` means the range ``[x, x]``."""
    return (v, v) if isinstance(v, int | float) and not isinstance(v, bool) else v


class NodeClass(_Strict):
    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)
    cpu_m: int = Field(gt=0, le=MAX_QUANTITY, description="capacity in millicores")
    mem_mib: int = Field(gt=0, le=MAX_QUANTITY)
    at: Literal["edge", "hub", "any"] = "any"
    cpu_speed: float = Field(
        default=1.0, gt=0, description="work done per CPU-second, relative to work_cpu_s"
    )

    def allocatable(self) -> tuple[int, int]:
        """(CPU millicores, memory MiB) a node of this class offers to tasks."""
        return int(self.cpu_m * ALLOCATABLE_CPU), int(self.mem_mib * ALLOCATABLE_MEM)

    @model_validator(mode="after")
    def _room(self) -> NodeClass:
        cpu, mem = self.allocatable()
        if cpu < 1:
            raise ValueError(
                f"cpu_m: {self.cpu_m} m leaves no allocatable CPU "
                f"({ALLOCATABLE_CPU:.0%}, rounded down); must be >= 2"
            )
        if mem < 1:
            raise ValueError(
                f"mem_mib: {self.mem_mib} MiB leaves no allocatable memory "
                f"({ALLOCATABLE_MEM:.0%}, rounded down); must be >= 2"
            )
        return self


class LinkSpec(_Strict):
    """One explicit link between two named sites; a range is drawn per seed (latency
    uniformly, bandwidth log-uniformly, as generated links are), a missing value from the
    topology's ``link_latency_ms`` / ``link_bandwidth_mbps``."""

    a: str = Field(min_length=1)
    b: str = Field(min_length=1)
    latency_ms: Range | None = None
    bandwidth_mbps: UnboundedRange | None = None

    _ranges_in = field_validator("latency_ms", "bandwidth_mbps", mode="before")(
        lambda v: _as_range(v)
    )

    @model_validator(mode="after")
    def _ends(self) -> LinkSpec:
        if self.a == self.b:
            raise ValueError(f"b: a link joins two different sites (both are {self.a!r})")
        if self.latency_ms is not None:
            _check_range(self.latency_ms, "latency_ms")
            if self.latency_ms[0] < 0:
                raise ValueError("latency_ms: must be >= 0")
        if self.bandwidth_mbps is not None:
            _check_range(self.bandwidth_mbps, "bandwidth_mbps")
            if self.bandwidth_mbps[0] <= 0:
                raise ValueError("bandwidth_mbps: must be positive")
        return self


class Topology(_Strict):
    nodes: int = Field(ge=1, le=100_000, description="total node count, hub included")
    nodes_per_site: tuple[int, int] = (2, 8)
    shape: Literal["star", "ring", "tree", "line", "mesh"] = "tree"
    tree_fanout: int = Field(default=3, ge=1)
    mesh_extra_links: float = Field(default=0.5, ge=0, description="extra chords per site")
    hub_nodes: int = Field(default=0, ge=0, description="nodes at the central site(s)")
    hubs: int = Field(default=1, ge=1, description="hub sites sharing hub_nodes (generated)")
    hub_latency_ms: Range = (10.0, 30.0)
    hub_bandwidth_mbps: UnboundedRange = (1000.0, 10000.0)
    intra_latency_ms: float = Field(default=0.5, ge=0)
    intra_bandwidth_mbps: Unbounded | None = Field(
        default=None, gt=0, description="between two nodes of one site; none: not limited"
    )
    link_latency_ms: Range = (1.0, 10.0)
    link_bandwidth_mbps: UnboundedRange = (100.0, 1000.0)
    links: list[LinkSpec] | None = Field(
        default=None, min_length=1, description="explicit links instead of the generated shape"
    )
    hub_sites: list[str] | None = Field(
        default=None, min_length=1, description="with explicit links: the sites of hub_nodes"
    )
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
        if self.links is None:
            if self.hub_sites is not None:
                raise ValueError("hub_sites: only with explicit links (use hubs: N otherwise)")
            return self
        if self.hubs != 1:
            raise ValueError("hubs: with explicit links, name the hub sites in hub_sites")
        pairs = [frozenset((lk.a, lk.b)) for lk in self.links]
        for k, pair in enumerate(pairs):
            if pair in pairs[:k]:
                raise ValueError(f"links.{k}: a second link between {' and '.join(sorted(pair))}")
        sites = self.link_sites()
        cut = [s for s in sites if s not in self._reachable(sites[0])]
        if cut:
            raise ValueError(
                f"links: {', '.join(map(repr, cut))} cannot be reached from {sites[0]!r}; "
                "the links must join every site into one network"
            )
        for k, name in enumerate(self.hub_sites or ()):
            if name not in sites:
                raise ValueError(f"hub_sites.{k}: {name!r} is not a site of any link")
        if self.hub_nodes and not self.hub_sites:
            raise ValueError("hub_sites: hub_nodes > 0 with explicit links needs hub sites")
        if self.hub_sites and not self.hub_nodes:
            raise ValueError("hub_nodes: hub_sites need hub_nodes > 0")
        edge = self.edge_link_sites()
        if not edge:
            raise ValueError("hub_sites: every site is a hub; edge nodes need an edge site")
        if self.nodes - self.hub_nodes < len(edge):
            raise ValueError(
                f"nodes: {self.nodes - self.hub_nodes} edge nodes cannot fill "
                f"{len(edge)} edge sites (one node each at least)"
            )
        return self

    def _reachable(self, start: str) -> set[str]:
        """The sites the explicit links connect to ``start``."""
        adjacent: dict[str, list[str]] = {}
        for lk in self.links or ():
            adjacent.setdefault(lk.a, []).append(lk.b)
            adjacent.setdefault(lk.b, []).append(lk.a)
        seen, todo = {start}, [start]
        while todo:
            for nxt in adjacent.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def link_sites(self) -> list[str]:
        """The sites the explicit links name, in order of first appearance."""
        return list(dict.fromkeys(n for lk in self.links or () for n in (lk.a, lk.b)))

    def edge_link_sites(self) -> list[str]:
        hubs = set(self.hub_sites or ())
        return [s for s in self.link_sites() if s not in hubs]


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
    """A kind of task. ``output_mb`` is the result sent back to the data source's site once
    the CPU work is done; ``arrivals`` and ``sources``, when set, replace the workload's for
    this class only (the class keeps its share of the offered load)."""

    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)
    cpu_request_m: tuple[int, int]
    mem_request_mib: tuple[int, int]
    work_cpu_s: float = Field(gt=0, description="mean CPU-seconds (exponential)")
    input_mb: Range = (0.0, 0.0)
    output_mb: Range = (0.0, 0.0)
    latency_budget_ms: Unbounded | None = Field(default=None, gt=0)
    deadline_s: Unbounded | None = Field(default=None, gt=0)
    arrivals: Arrivals | None = None
    sources: Sources | None = None

    _output_in = field_validator("output_mb", mode="before")(lambda v: _as_range(v))

    @field_validator("latency_budget_ms", "deadline_s")
    @classmethod
    def _inf_is_none(cls, v: float | None) -> float | None:
        """``.inf``: no budget, no deadline (what leaving the field out says)."""
        return None if v is not None and math.isinf(v) else v

    @model_validator(mode="after")
    def _ranges(self) -> TaskClass:
        for name in ("cpu_request_m", "mem_request_mib"):
            lo, hi = getattr(self, name)
            if lo <= 0:
                raise ValueError(f"{name}: must be positive")
            if hi > MAX_QUANTITY:
                raise ValueError(f"{name}: must be <= {MAX_QUANTITY}")
            _check_range((float(lo), float(hi)), name)
        for name in ("input_mb", "output_mb"):
            r: Range = getattr(self, name)
            _check_range(r, name)
            if r[0] < 0:
                raise ValueError(f"{name}: must be >= 0")
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


class OutageRate(_Strict):
    """Outages of one kind of element (a link, or a whole site): each element fails as a
    Poisson process at ``rate_per_hour`` and stays down an exponential ``mean_down_s``."""

    rate_per_hour: float = Field(gt=0)
    mean_down_s: float = Field(gt=0)


class Failures(_Strict):
    """Node failures (``mtbf_s``/``mttr_s``, per node), link failures (a failed link makes
    every path that crosses it unusable until it recovers) and site failures (every node of
    the site down together). Any subset; each has its own random stream."""

    mtbf_s: Unbounded | None = Field(default=None, gt=0, description="per node")
    mttr_s: float | None = Field(default=None, gt=0, description="mean time to repair")
    links: OutageRate | None = None
    sites: OutageRate | None = None

    @model_validator(mode="after")
    def _some(self) -> Failures:
        if (self.mtbf_s is None) != (self.mttr_s is None):
            missing = "mttr_s" if self.mttr_s is None else "mtbf_s"
            raise ValueError(f"{missing}: node failures need both mtbf_s and mttr_s")
        if self.mtbf_s is None and self.links is None and self.sites is None:
            raise ValueError("mtbf_s: give node (mtbf_s, mttr_s), links or sites failures")
        return self


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


class SiteOverride(_Strict):
    """Settings of one site that differ from the scenario-wide ones. ``site`` is a site name
    (``site-003``, ``hub``, ``hub-1``, or a name from explicit links) or an edge-site index.
    A generated size may have fewer sites than an override names; that override then has no
    effect (one family file runs at many sizes)."""

    site: str | int
    node_classes: dict[str, float] | None = Field(
        default=None, description="class name -> weight at this site (others: 0)"
    )
    background_mean: float | None = Field(default=None, ge=0, lt=1)
    source_weight: float | None = Field(default=None, ge=0, description="default 1")
    node_mtbf_s: Unbounded | None = Field(default=None, gt=0)
    site_failures_per_hour: float | None = Field(default=None, ge=0)

    @field_validator("node_classes", mode="before")
    @classmethod
    def _no_bool_weights(cls, v: Any) -> Any:
        for name, w in v.items() if isinstance(v, dict) else ():
            if isinstance(w, bool):
                raise ValueError(f"{name}: {str(w).lower()} is not a weight")
        return v

    @model_validator(mode="after")
    def _weights(self) -> SiteOverride:
        if isinstance(self.site, int) and self.site < 0:
            raise ValueError("site: an edge-site index is >= 0")
        if self.node_classes is not None:
            if not self.node_classes or sum(self.node_classes.values()) <= 0:
                raise ValueError("node_classes: need a class with a positive weight")
            for name, w in self.node_classes.items():
                if w < 0:
                    raise ValueError(f"node_classes.{name}: weight must be >= 0")
        return self


_GENERATED_SITE = re.compile(r"(site-\d{3,}|hub|hub-\d+)")


class Scenario(_Strict):
    name: str = Field(min_length=1)
    family: str = Field(min_length=1)
    split: Literal["train", "heldout"] = "train"
    description: str = ""
    topology: Topology
    workload: Workload
    dynamics: Dynamics = Field(default_factory=Dynamics)
    sites: list[SiteOverride] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        """Rules that span sections; each message starts with the full dotted path."""
        topo, failures = self.topology, self.dynamics.failures
        explicit = topo.link_sites() if topo.links is not None else None
        hubs = set(topo.hub_sites or ()) if explicit is not None else set()
        classes = {c.name: c for c in topo.node_classes}
        seen: set[str | int] = set()
        for k, ov in enumerate(self.sites):
            at = f"sites.{k}"
            if ov.site in seen:
                raise ValueError(f"{at}.site: {ov.site!r} has an override already")
            seen.add(ov.site)
            if isinstance(ov.site, str):
                if explicit is not None and ov.site not in explicit:
                    raise ValueError(f"{at}.site: {ov.site!r} is not a site of topology.links")
                if explicit is None and not _GENERATED_SITE.fullmatch(ov.site):
                    raise ValueError(f"{at}.site: {ov.site!r} is not site-NNN, hub or hub-N")
            elif explicit is not None and ov.site >= len(topo.edge_link_sites()):
                raise ValueError(f"{at}.site: edge-site index {ov.site} is out of range")
            hub = ov.site in hubs or (
                explicit is None and isinstance(ov.site, str) and ov.site.startswith("hub")
            )
            for name, w in (ov.node_classes or {}).items():
                if name not in classes:
                    raise ValueError(f"{at}.node_classes.{name}: not a topology.node_classes name")
                if sum(c.name == name for c in topo.node_classes) > 1:
                    raise ValueError(f"{at}.node_classes.{name}: two node classes have this name")
                if w > 0 and classes[name].at not in ("hub" if hub else "edge", "any"):
                    where = "a hub" if hub else "an edge site"
                    raise ValueError(f"{at}.node_classes.{name}: class is not for {where}")
            if ov.node_mtbf_s is not None and (failures is None or failures.mttr_s is None):
                raise ValueError(f"{at}.node_mtbf_s: needs dynamics.failures.mttr_s")
            if ov.site_failures_per_hour is not None and (
                failures is None or failures.sites is None
            ):
                raise ValueError(
                    f"{at}.site_failures_per_hour: needs dynamics.failures.sites (mean_down_s)"
                )
        self._some_class_fits()
        return self

    def _some_class_fits(self) -> None:
        """Some task class must fit some node class, or no task could ever run (a class
        larger than every node is allowed: its tasks are counted as unplaceable)."""
        topo = self.topology
        room = [
            c.allocatable()
            for c in topo.node_classes
            if c.at in ("edge", "any") or (c.at == "hub" and topo.hub_nodes > 0)
        ]
        for c in self.workload.task_classes:
            cpu = max(50, 50 * (c.cpu_request_m[0] // 50))  # requests are rounded to 50 m
            if any(cpu <= rc and c.mem_request_mib[0] <= rm for rc, rm in room):
                return
        cpu_max, mem_max = max(r[0] for r in room), max(r[1] for r in room)
        raise ValueError(
            "workload.task_classes: no task could ever run: every class's smallest "
            "cpu_request_m / mem_request_mib is above what every node class offers "
            f"(allocatable {ALLOCATABLE_CPU:.0%} of cpu_m and {ALLOCATABLE_MEM:.0%} of mem_mib, "
            f"at most {cpu_max} m and {mem_max} MiB here)"
        )

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


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load``, but a mapping that gives one key twice is an error (PyYAML keeps
    the last value silently, so a typo'd copy of a field would win unnoticed)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key_node.value!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_scenario(data: object, source: str = "<scenario>") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            if not loc and err["type"] == "value_error":
                # a cross-section rule: its message starts with the dotted path already
                lines.append(f"  {err['msg'].removeprefix('Value error, ')}")
                continue
            lines.append(f"  {loc or '(top level)'}: {err['msg']}")
        raise ScenarioError(f"{source}: invalid scenario\n" + "\n".join(lines)) from None


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A scenario from a YAML path, or a built-in one by name (``factory-floor``)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"{p}: cannot read scenario file: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ScenarioError(f"{p}: not UTF-8 text: {exc}") from None
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
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {exc}") from None
    return parse_scenario(data, source)


def builtin_scenarios() -> list[str]:
    root = resources.files("edge_allocator.sim.scenarios")
    return sorted(f.name[: -len(".yaml")] for f in root.iterdir() if f.name.endswith(".yaml"))
