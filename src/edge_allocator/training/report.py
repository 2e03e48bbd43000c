"""Evaluation output: the text table, the JSON document and the PNG plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

_MISSING = {"mean": None, "ci95": None}
"""A metric an older evaluation file does not have."""


def _fmt(v: dict[str, float | None], scale: float = 1.0, digits: int = 2) -> str:
    """``mean ±ci``; a missing value (NaN, or null once written to JSON) prints as ``-``."""
    mean, ci = v["mean"], v["ci95"]
    if mean is None or math.isnan(mean):
        return "-"
    out = f"{mean * scale:.{digits}f}"
    return out if ci is None or math.isnan(ci) else out + f" ±{ci * scale:.{digits}f}"


def table(agg: dict[str, Any], focus: str = "gnn") -> str:
    """One block per case: a row per policy, plus the paired change of ``focus``."""
    rel = {(p["case"], p["versus"]): p for p in agg["paired"] if p["policy"] == focus}
    lines: list[str] = []
    header = (
        f"{'policy':<17} {'mean CT s':>15} {'p95 CT s':>15} {'SLO viol %':>13} "
        f"{'net lat ms':>13} {'CPU imbal':>13} {'1-choice %':>11} "
        f"{focus + ' vs it (CT, paired)':>24}"
    )
    cases = list(dict.fromkeys((r["split"], r["case"]) for r in agg["rows"]))
    for split, case in cases:
        lines.append(f"== {case} [{split}] ==")
        lines.append(header)
        for r in (r for r in agg["rows"] if r["case"] == case):
            p = rel.get((case, r["policy"]))
            cmp_ = ""
            if p is not None:
                ci = p["completion_rel_ci95"]
                cmp_ = f"{p['completion_rel'] * 100:+.1f}%"
                if ci is not None and not math.isnan(ci):  # one seed: no interval
                    cmp_ += f" ±{ci * 100:.1f}"
                if p["is_best_heuristic"]:
                    cmp_ += " (best)"
            lines.append(
                f"{r['policy']:<17} {_fmt(r['mean_completion_s']):>15} "
                f"{_fmt(r['p95_completion_s'], digits=1):>15} "
                f"{_fmt(r['slo_violation_rate'], 100.0, 1):>13} "
                f"{_fmt(r['mean_network_latency_ms'], digits=1):>13} "
                f"{_fmt(r['cpu_imbalance'], digits=3):>13} "
                f"{_fmt(r.get('forced_decision_share', _MISSING), 100.0, 0):>11} {cmp_:>24}"
            )
        lines.append("")
    return "\n".join(lines)


def summary_lines(summary: dict[str, Any], focus: str = "gnn") -> str:
    lines = []
    for split, s in summary.items():
        lines.append(
            f"[{split}] {focus} mean completion vs kube-default "
            f"{s['vs_kube_default_mean'] * 100:+.1f}%, vs best heuristic per case "
            f"{s['vs_best_heuristic_mean'] * 100:+.1f}% (worst {s['worst_case']}: "
            f"{s['vs_best_heuristic_worst'] * 100:+.1f}%); SLO violations higher than: "
            + (", ".join(s["slo_higher_than"]) or "none")
        )
    return "\n".join(lines)


def plots(agg: dict[str, Any], out_dir: Path) -> list[Path]:
    """Per split: mean completion and SLO-violation rate per case, normalised to kube-default."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    splits = list(dict.fromkeys(r["split"] for r in agg["rows"]))
    for split in splits:
        rows = [r for r in agg["rows"] if r["split"] == split]
        cases = list(dict.fromkeys(r["case"] for r in rows))
        policies = list(dict.fromkeys(r["policy"] for r in rows))
        fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.6 * len(cases)), 8))
        width = 0.8 / max(len(policies), 1)
        for k, (metric, label) in enumerate(
            [
                ("mean_completion_s", "mean completion / kube-default"),
                ("slo_violation_rate", "SLO violation rate"),
            ]
        ):
            ax = axes[k]
            for j, p in enumerate(policies):
                xs, ys, es = [], [], []
                for i, c in enumerate(cases):
                    r = next((r for r in rows if r["case"] == c and r["policy"] == p), None)
                    base = next(
                        (r for r in rows if r["case"] == c and r["policy"] == "kube-default"), None
                    )
                    if r is None:
                        continue
                    v, e = r[metric]["mean"], r[metric]["ci95"]
                    if metric == "mean_completion_s" and base is not None:
                        denom = base[metric]["mean"]
                        v, e = v / denom, e / denom
                    xs.append(i + j * width)
                    ys.append(v)
                    es.append(0.0 if math.isnan(e) else e)
                ax.bar(xs, ys, width, yerr=es, label=p, capsize=2)
            ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cases))])
            ax.set_xticklabels(cases, rotation=20, fontsize=8)
            ax.set_ylabel(label)
        axes[0].axhline(1.0, color="grey", linewidth=0.8)
        axes[0].legend(fontsize=7, ncol=5)
        axes[0].set_title(f"{split} scenarios (95% CI over seeds)")
        fig.tight_layout()
        path = out_dir / f"eval-{split}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
