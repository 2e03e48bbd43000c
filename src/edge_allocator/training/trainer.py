"""Training the placement GNN: imitation warm start, then PPO with a learned value baseline.

1. Behaviour cloning on the teacher's choices, plus DAgger rounds where the student acts and
   the teacher labels, so the student learns to recover from its own mistakes. The default
   teacher is the greedy oracle: it reads the simulator's exact state (remaining work,
   background load), which no deployable scheduler has, so the student has to learn to infer
   that state from what a live snapshot shows (exact requests and task counts, metrics that
   are up to one interval old). A deployable heuristic can be the teacher instead.
2. PPO: actions sampled from the softmax over candidates; reward per decision is minus the
   placed task's completion time (normalised by the teacher's mean on the same seed) minus a
   penalty for an SLO violation; returns are discounted over the following decisions (tasks
   share nodes, so a placement affects the next ones); the value head is the baseline.

Model selection uses a validation set (training families, seeds disjoint from training) and
never the held-out families. Everything is seeded; one thread count is fixed.
"""

from __future__ import annotations

import csv
import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch_geometric

from edge_allocator.policy.gnn import GNNConfig, PlacementGNN
from edge_allocator.policy.gnn_policy import GNNPolicy
from edge_allocator.sim.engine import PolicyChooser, Simulator, simulator_for
from edge_allocator.sim.scenario import Scenario, load_scenario
from edge_allocator.training.batching import Decision, forward_batch
from edge_allocator.training.evaluate import TRAIN_FAMILIES, make_policy
from edge_allocator.training.rollout import RecordingChooser


@dataclass
class TrainConfig:
    """Everything that determines the trained model (recorded in the model file)."""

    seed: int = 0
    families: tuple[str, ...] = TRAIN_FAMILIES
    sizes: tuple[int, ...] = (10, 20, 40, 80)
    load_scales: tuple[float, ...] = (1.0, 1.3, 0.8)
    # domain randomisation of the background load each training episode sees (uniform ranges;
    # validation keeps the families as written)
    bg_mean: tuple[float, float] = (0.05, 0.4)
    bg_heterogeneity: tuple[float, float] = (0.2, 1.0)
    bg_volatility: tuple[float, float] = (0.02, 0.12)
    # the share of episodes whose transfers share link bandwidth (max-min) in families that
    # do not already: congestion is what a graph policy can see and a per-node score cannot
    max_min_share: float = 0.5
    # the share of episodes whose tasks the student sees without their work (CPU-seconds), as
    # every live pod is: a model that never saw has_work = 0 meets it on every live decision
    work_hidden_share: float = 0.3
    tasks_per_node: int = 15
    min_tasks: int = 200
    max_tasks: int = 700
    teacher: str = "greedy-oracle"
    bc_episodes: int = 30
    dagger_rounds: int = 3
    dagger_episodes: int = 10
    bc_epochs: int = 3
    bc_lr: float = 3e-3
    ppo_iterations: int = 200
    ppo_episodes: int = 4
    ppo_epochs: int = 2
    ppo_lr: float = 1e-4
    ppo_sizes: tuple[int, ...] = (10, 20, 40)
    gamma: float = 0.8
    clip: float = 0.2
    slo_penalty: float = 1.0
    value_coef: float = 0.5
    entropy_coef: float = 0.003
    minibatch: int = 64
    val_every: int = 10
    val_seeds: tuple[int, ...] = (900_001, 900_002, 900_003)
    val_size: int = 30
    threads: int = 1
    model: GNNConfig = field(default_factory=GNNConfig)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["families"] = list(self.families)
        d["sizes"] = list(self.sizes)
        d["load_scales"] = list(self.load_scales)
        for k in ("bg_mean", "bg_heterogeneity", "bg_volatility"):
            d[k] = list(getattr(self, k))
        d["ppo_sizes"] = list(self.ppo_sizes)
        d["val_seeds"] = list(self.val_seeds)
        return d


def sized(scenario: Scenario, nodes: int, cfg: TrainConfig, load_scale: float = 1.0) -> Scenario:
    tasks = min(max(cfg.tasks_per_node * nodes, cfg.min_tasks), cfg.max_tasks)
    return scenario.resized(nodes, tasks, load_scale)


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def numeric_environment() -> dict[str, str]:
    """What decides the floats a training run produces beside the code and the seed: library
    versions and the CPU's instruction set (MKL and ATen pick their kernels by it, so the same
    code and seed give different rounding, then different weights, on another CPU)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "torch": str(torch.__version__),
        "torch_geometric": str(torch_geometric.__version__),
        "numpy": str(np.__version__),
        "cpu": cpu,
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
    }


@dataclass
class CurvePoint:
    phase: str
    step: int
    elapsed_s: float
    loss: float
    val_ratio: float  # validation mean completion / teacher's (lower is better), nan if none


class Trainer:
    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.log = log
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        self.rng = np.random.default_rng(cfg.seed)
        self.model = PlacementGNN(cfg.model)
        self.teacher = make_policy(cfg.teacher)
        self.scenarios = [load_scenario(f) for f in cfg.families]
        self.curve: list[CurvePoint] = []
        self.t0 = time.perf_counter()
        self.episode = 0
        self._teacher_means: dict[tuple[str, int, int], float] = {}
        self.best_ratio = math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_phase = ""

    # -- helpers ---------------------------------------------------------------------------
    def _hides_work(self, seed: int) -> bool:
        """Whether the episode of this seed shows the student its tasks without their work
        (its own generator, so no other random stream shifts)."""
        rng = np.random.default_rng([self.cfg.seed, seed, 0x3C])
        return bool(rng.uniform() < self.cfg.work_hidden_share)

    def _next_case(self, sizes: tuple[int, ...] | None = None) -> tuple[Scenario, int]:
        sizes = sizes or self.cfg.sizes
        ep, n_sc = self.episode, len(self.scenarios)
        sc = self.scenarios[ep % n_sc]
        size = sizes[(ep // n_sc) % len(sizes)]
        scale = self.cfg.load_scales[(ep // (n_sc * len(sizes))) % len(self.cfg.load_scales)]
        seed = self.cfg.seed * 100_000 + ep
        self.episode += 1
        return self._randomised(sized(sc, size, self.cfg, scale), ep), seed

    def _randomised(self, sc: Scenario, episode: int) -> Scenario:
        """The scenario with its background load drawn from the configured ranges and, in a
        ``max_min_share`` of episodes, link sharing switched on (its own generator per
        episode, so the other random streams do not shift)."""
        rng = np.random.default_rng([self.cfg.seed, episode, 0xB6])
        bg = sc.dynamics.background.model_copy(
            update={
                "mean": float(rng.uniform(*self.cfg.bg_mean)),
                "heterogeneity": float(rng.uniform(*self.cfg.bg_heterogeneity)),
                "volatility": float(rng.uniform(*self.cfg.bg_volatility)),
            }
        )
        update: dict[str, Any] = {"background": bg}
        if float(rng.uniform()) < self.cfg.max_min_share:
            update["network"] = sc.dynamics.network.model_copy(update={"sharing": "max-min"})
        dyn = sc.dynamics.model_copy(update=update)
        return sc.model_copy(update={"dynamics": dyn})

    def _teacher_mean(self, sc: Scenario, seed: int) -> float:
        key = (sc.name, sc.topology.nodes, seed)
        if key not in self._teacher_means:
            res = simulator_for(self.teacher, sc, seed).run(PolicyChooser(self.teacher))
            s = res.summary()
            self._teacher_means[key] = max(float(s["mean_completion_s"]), 1e-3)
        return self._teacher_means[key]

    def _elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def _record(self, phase: str, step: int, loss: float, val: float = math.nan) -> None:
        self.curve.append(CurvePoint(phase, step, self._elapsed(), loss, val))

    def validate(self, phase: str) -> float:
        """Mean over validation runs of (GNN mean completion / teacher mean completion)."""
        policy = GNNPolicy(self.model, {"name": "gnn", "version": "training"})
        ratios = []
        for sc0 in self.scenarios:
            sc = sized(sc0, self.cfg.val_size, self.cfg)
            for seed in self.cfg.val_seeds:
                res = Simulator(sc, seed).run(PolicyChooser(policy))
                ratios.append(res.summary()["mean_completion_s"] / self._teacher_mean(sc, seed))
        ratio = float(np.mean(ratios))
        if ratio < self.best_ratio:
            self.best_ratio = ratio
            self.best_state = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.best_phase = phase
        return ratio

    def _rollout(self, mode: str) -> tuple[list[Decision], Simulator, Any]:
        sc, seed = self._next_case()
        sim = simulator_for(self.teacher, sc, seed)
        chooser = RecordingChooser(
            None if mode == "teacher" else self.model,
            self.teacher,
            mode,
            self.rng,
            hide_work=self._hides_work(seed),
        )
        self.model.eval()
        result = sim.run(chooser)
        return chooser.records, sim, result

    # -- phases ----------------------------------------------------------------------------
    def _fit_bc(self, data: list[Decision], epochs: int, opt: torch.optim.Optimizer) -> float:
        self.model.train()
        loss_sum, n = 0.0, 0
        for _ in range(epochs):
            order = self.rng.permutation(len(data))
            for start in range(0, len(data), self.cfg.minibatch):
                recs = [data[i] for i in order[start : start + self.cfg.minibatch]]
                out = forward_batch(self.model, recs)
                target = out.offsets + torch.tensor([r.teacher for r in recs])
                loss = -out.logp_all[target].mean()
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                opt.step()
                loss_sum += float(loss.detach()) * len(recs)
                n += len(recs)
        return loss_sum / max(n, 1)

    def imitation(self) -> None:
        cfg = self.cfg
        opt = torch.optim.Adam(self.model.parameters(), lr=cfg.bc_lr)
        data: list[Decision] = []
        for _ in range(cfg.bc_episodes):
            recs, _, _ = self._rollout("teacher")
            data += recs
        self.log(
            f"[bc] {len(data)} teacher decisions from {cfg.bc_episodes} episodes "
            f"({self._elapsed():.0f}s)"
        )
        loss = self._fit_bc(data, cfg.bc_epochs, opt)
        val = self.validate("bc")
        self._record("bc", 0, loss, val)
        self.log(f"[bc] round 0 loss {loss:.4f} val ratio {val:.4f} ({self._elapsed():.0f}s)")
        for rnd in range(1, cfg.dagger_rounds + 1):
            agree, total = 0, 0
            for _ in range(cfg.dagger_episodes):
                recs, _, _ = self._rollout("greedy")
                agree += sum(r.action == r.teacher for r in recs)
                total += len(recs)
                data += recs
            loss = self._fit_bc(data, cfg.bc_epochs, opt)
            val = self.validate(f"dagger-{rnd}")
            self._record("dagger", rnd, loss, val)
            self.log(
                f"[dagger] round {rnd} agreement {agree / max(total, 1):.3f} loss {loss:.4f} "
                f"val ratio {val:.4f} data {len(data)} ({self._elapsed():.0f}s)"
            )

    def _returns(self, recs: list[Decision], sim: Simulator, res: Any) -> np.ndarray:
        """Discounted sum of the following decisions' rewards (normalised completion)."""
        cfg = self.cfg
        scale = self._teacher_mean(sim.scenario, sim.seed)
        rewards = np.array(
            [
                -res.completion_s[r.task_id] / scale
                - cfg.slo_penalty * float(res.violated[r.task_id])
                for r in recs
            ]
        )
        rewards = np.nan_to_num(rewards, nan=-10.0)
        g = np.zeros_like(rewards)
        acc = 0.0
        for t in range(len(rewards) - 1, -1, -1):
            acc = rewards[t] + cfg.gamma * acc
            g[t] = acc
        scaled: np.ndarray = g * (1.0 - cfg.gamma)  # on the scale of one reward
        return scaled

    def ppo(self) -> None:
        """PPO; the advantage baseline is the mean return of the same task over the
        iteration's rollouts (all on one arrival sequence, as in Decima), and the learned
        value head where a task was decided in one rollout only."""
        cfg = self.cfg
        opt = torch.optim.Adam(self.model.parameters(), lr=cfg.ppo_lr)
        for it in range(1, cfg.ppo_iterations + 1):
            sc, seed = self._next_case(cfg.ppo_sizes)
            batch: list[Decision] = []
            returns: list[float] = []
            per_task: dict[int, list[float]] = {}
            for _ in range(cfg.ppo_episodes):
                sim = Simulator(sc, seed)  # the student acts alone: no teacher labels
                chooser = RecordingChooser(
                    self.model, None, "sample", self.rng, hide_work=self._hides_work(seed)
                )
                self.model.eval()
                res = sim.run(chooser)
                g = self._returns(chooser.records, sim, res)
                for r, gr in zip(chooser.records, g, strict=True):
                    per_task.setdefault(r.task_id, []).append(float(gr))
                batch += chooser.records
                returns += g.tolist()
            if len(batch) < 2:
                continue
            ret = torch.tensor(returns, dtype=torch.float32)
            with torch.no_grad():
                values = torch.cat(
                    [
                        forward_batch(self.model, batch[i : i + 256]).values
                        for i in range(0, len(batch), 256)
                    ]
                )
            base = torch.tensor(
                [
                    float(np.mean(per_task[r.task_id]))
                    if len(per_task[r.task_id]) > 1
                    else float(values[i])
                    for i, r in enumerate(batch)
                ]
            )
            adv_all = ret - base
            adv_all = (adv_all - adv_all.mean()) / (adv_all.std() + 1e-6)
            old_logp = torch.tensor([r.logp for r in batch])
            self.model.train()
            loss_sum, n = 0.0, 0
            for _ in range(cfg.ppo_epochs):
                order = self.rng.permutation(len(batch))
                for start in range(0, len(batch), cfg.minibatch):
                    idx = order[start : start + cfg.minibatch]
                    recs = [batch[i] for i in idx]
                    out = forward_batch(self.model, recs)
                    act = out.offsets + torch.tensor([r.action for r in recs])
                    logp = out.logp_all[act]
                    tidx = torch.from_numpy(idx)
                    adv = adv_all[tidx]
                    ratio = torch.exp(logp - old_logp[tidx])
                    pg = -torch.min(
                        ratio * adv, torch.clamp(ratio, 1 - cfg.clip, 1 + cfg.clip) * adv
                    ).mean()
                    vloss = torch.nn.functional.mse_loss(out.values, ret[tidx])
                    p = torch.exp(out.logp_all)
                    ent = -(p * out.logp_all).sum() / len(recs)
                    loss = pg + cfg.value_coef * vloss - cfg.entropy_coef * ent
                    if not torch.isfinite(loss):
                        continue
                    opt.zero_grad()
                    loss.backward()  # type: ignore[no-untyped-call]
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), 0.5)
                    opt.step()
                    loss_sum += float(loss.detach()) * len(recs)
                    n += len(recs)
            mean_ret = float(ret.mean())
            val = math.nan
            if it % cfg.val_every == 0 or it == cfg.ppo_iterations:
                val = self.validate(f"ppo-{it}")
            self._record("ppo", it, loss_sum / max(n, 1), val)
            self.log(
                f"[ppo] iter {it}/{cfg.ppo_iterations} {sc.name} decisions {len(batch)} "
                f"mean return {mean_ret:.3f} loss {loss_sum / max(n, 1):.4f}"
                + ("" if math.isnan(val) else f" val ratio {val:.4f}")
                + f" ({self._elapsed():.0f}s)"
            )

    def train(self) -> dict[str, Any]:
        self.log(
            f"training with seed {self.cfg.seed}, teacher {self.cfg.teacher}, "
            f"{self.cfg.threads} threads"
        )
        self.imitation()
        self.ppo()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.log(
            f"best validation ratio {self.best_ratio:.4f} from {self.best_phase} "
            f"({self._elapsed():.0f}s)"
        )
        return {
            "best_validation_ratio": self.best_ratio,
            "best_checkpoint": self.best_phase,
            "train_seconds": round(self._elapsed(), 1),
            "episodes": self.episode,
        }

    def write_curve(self, csv_path: Path, png_path: Path) -> None:
        with csv_path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["phase", "step", "elapsed_s", "loss", "val_ratio_vs_teacher"])
            for p in self.curve:
                w.writerow(
                    [
                        p.phase,
                        p.step,
                        f"{p.elapsed_s:.1f}",
                        f"{p.loss:.5f}",
                        "" if math.isnan(p.val_ratio) else f"{p.val_ratio:.5f}",
                    ]
                )
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        xs = [p.elapsed_s / 60 for p in self.curve]
        a1.plot(xs, [p.loss for p in self.curve], marker=".")
        a1.set_xlabel("minutes")
        a1.set_ylabel("training loss (BC: cross-entropy, PPO: clipped objective)")
        vx = [p.elapsed_s / 60 for p in self.curve if not math.isnan(p.val_ratio)]
        vy = [p.val_ratio for p in self.curve if not math.isnan(p.val_ratio)]
        a2.plot(vx, vy, marker="o")
        a2.axhline(1.0, color="grey", linestyle="--", label=f"teacher ({self.cfg.teacher})")
        a2.set_xlabel("minutes")
        a2.set_ylabel("validation mean completion / teacher")
        a2.legend()
        fig.tight_layout()
        fig.savefig(png_path, dpi=100)
        plt.close(fig)
