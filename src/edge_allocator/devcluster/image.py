"""Build the product image from the repository's one Dockerfile, with no Docker engine.

Users build the image with ``docker build``; here there is no engine and no registry, only the
Debian mirrors. So the base image is made locally: ``debootstrap`` of Debian trixie (the suite
of the Dockerfile's default ``python:3.13-slim-trixie``) with Debian's Python 3.13 and its
CPU-only ``python3-torch``, slimmed as Debian's container images are, and committed with
buildah. Then ``buildah bud --pull=never`` builds the Dockerfile with two build arguments: that
base as ``PYTHON_IMAGE`` and an empty ``TORCH_INDEX_URL`` (use the base's torch). The result is
saved as an OCI archive that containerd imports. Every step is cached: the base image by a hash
of its package list, the Dockerfile's layers by buildah (``--layers``), the archive by image id.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_allocator.devcluster import paths
from edge_allocator.devcluster.prereqs import IMAGE_TOOLS, ensure_packages, require_root

DEBIAN_MIRROR_ENV = "EDGE_ALLOCATOR_DEBIAN_MIRROR"
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_SUITE = "trixie"
# What python:3.13-slim-trixie has (Python 3.13, venv, `python`, CA certificates), plus torch.
BASE_PACKAGES: tuple[str, ...] = (
    "python3",
    "python3-venv",
    "python-is-python3",
    "ca-certificates",
    "python3-torch",
)
# Installed only as dependencies of dependencies and never loaded by `import torch`: the ROCm
# runtime that libucx0 links for its optional GPU transport (LLVM included, ~270 MB) and
# torch's own test binaries. Purged from the base (dpkg --force-depends); the build checks that
# torch still imports.
PRUNE_PACKAGES: tuple[str, ...] = (
    "libamdhip64-5",
    "libamd-comgr2",
    "libllvm17t64",
    "libtorch-test",
)
IMAGE_REPOSITORY = "localhost/edge-allocator"
# As Debian's own container images: no docs, man pages or locales (dpkg keeps them out later).
_DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""
_SLIM_REMOVE = (
    "usr/share/man",
    "usr/share/info",
    "usr/share/lintian",
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "var/cache/debconf/templates.dat-old",
    "var/log",
)


class ImageError(RuntimeError):
    """The image could not be built; the message says which step and why."""


@dataclass(frozen=True)
class BuiltImage:
    name: str  # repository:tag
    image_id: str
    size_bytes: int
    archive: Path  # OCI archive for `ctr images import`
    seconds: float


@dataclass
class ImageBuilder:
    """Builds ``localhost/edge-allocator:<tag>`` from the Dockerfile (cached at every step)."""

    tag: str = "dev"
    mirror: str = field(
        default_factory=lambda: os.environ.get(DEBIAN_MIRROR_ENV, DEFAULT_DEBIAN_MIRROR)
    )
    log: Callable[[str], None] = field(
        default=lambda s: print(s, file=sys.stderr, flush=True), repr=False
    )

    # ---- names and paths ---------------------------------------------------------------
    @property
    def base_name(self) -> str:
        spec = f"{BASE_SUITE} {' '.join(BASE_PACKAGES)} -{' '.join(PRUNE_PACKAGES)} v1"
        h = hashlib.sha256(spec.encode()).hexdigest()
        return f"localhost/edge-allocator-base:{BASE_SUITE}-torch-{h[:10]}"

    @property
    def name(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.tag}"

    @property
    def cache(self) -> Path:
        return paths.user_image_cache()

    @property
    def archive(self) -> Path:
        return self.cache / f"edge-allocator-{self.tag}.oci.tar"

    # ---- steps -------------------------------------------------------------------------
    def build(self, rebuild_base: bool = False) -> BuiltImage:
        started = time.monotonic()
        require_root("building the image with buildah (rootful storage)")
        ensure_packages(IMAGE_TOOLS, "building the image", self.log)
        if rebuild_base or not self.image_exists(self.base_name):
            self.build_base()
        else:
            self.log(f"[image] base {self.base_name} cached")
        self.build_dockerfile()
        image_id = self.image_id(self.name)
        self.export(image_id)
        size = self.image_size(self.name)
        took = time.monotonic() - started
        self.log(
            f"[image] {self.name} ({image_id[:12]}): {size / 2**20:.0f} MiB, archive "
            f"{self.archive} ({self.archive.stat().st_size / 2**20:.0f} MiB), {took:.0f}s"
        )
        return BuiltImage(self.name, image_id, size, self.archive, took)

    def build_base(self) -> None:
        """debootstrap + slim + commit as ``base_name``."""
        started = time.monotonic()
        self.cache.mkdir(parents=True, exist_ok=True)
        rootfs = self.cache / "rootfs.partial"
        # A finished debootstrap whose commit failed is reused (the marker holds the key).
        marker = rootfs / ".edge-allocator-debootstrap"
        if not (marker.is_file() and marker.read_text() == self.base_name):
            _rmtree(rootfs)
            self.log(
                f"[image] debootstrap {BASE_SUITE} (minbase + {', '.join(BASE_PACKAGES)}) from "
                f"{self.mirror}; about 2-4 minutes"
            )
            self._run(
                [
                    "debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                    BASE_SUITE, str(rootfs), self.mirror,
                ],
                "debootstrap", progress="I: ",
            )  # fmt: skip
            marker.write_text(self.base_name)
        self._prune(rootfs)
        self._slim(rootfs)
        marker.unlink()
        self.log(f"[image] committing {self.base_name}")
        ctr = self._out(["buildah", "from", "scratch"]).strip()
        try:
            mnt = Path(self._out(["buildah", "mount", ctr]).strip())
            self._run(["cp", "-a", f"{rootfs}/.", f"{mnt}/"], "copy the root filesystem")
            self._out(["buildah", "umount", ctr])
            self._out(
                [
                    "buildah", "config",
                    "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--env", "LANG=C.UTF-8",
                    "--cmd", "python3",
                    "--label", f"org.opencontainers.image.description=Debian {BASE_SUITE} "
                    f"minbase with {' '.join(BASE_PACKAGES)} (edge-allocator dev image)",
                    ctr,
                ]
            )  # fmt: skip
            self._out(["buildah", "commit", "--rm", "--squash", ctr, self.base_name])
        except BaseException:
            subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)
            raise
        finally:
            _rmtree(rootfs)
        self.log(f"[image] base {self.base_name} built in {time.monotonic() - started:.0f}s")

    def build_dockerfile(self) -> None:
        root = paths.repo_root()
        self.log(f"[image] buildah bud {root / 'Dockerfile'} -> {self.name} (cached layers)")
        cmd = [
            "buildah", "bud", "--pull=never", "--layers", "--network", "host",
            "--build-arg", f"PYTHON_IMAGE={self.base_name}",
            "--build-arg", "TORCH_INDEX_URL=",
            "-t", self.name, "-f", str(root / "Dockerfile"),
            *self._host_pip_mounts(), str(root),
        ]  # fmt: skip
        self._run(cmd, "buildah bud", progress="STEP ")

    def export(self, image_id: str) -> None:
        """Save the image as an OCI archive (skipped when the archive holds this image)."""
        stamp = self.archive.with_suffix(".id")
        if self.archive.exists() and stamp.exists() and stamp.read_text() == image_id:
            self.log(f"[image] archive {self.archive} up to date")
            return
        self.cache.mkdir(parents=True, exist_ok=True)  # the base may come from buildah's store
        tmp = self.archive.with_suffix(".partial")
        tmp.unlink(missing_ok=True)
        self._out(["buildah", "push", self.name, f"oci-archive:{tmp}:{self.name}"])
        tmp.rename(self.archive)
        stamp.write_text(image_id)

    # ---- buildah queries ---------------------------------------------------------------
    @staticmethod
    def image_exists(name: str) -> bool:
        return (
            subprocess.run(
                ["buildah", "inspect", "--type", "image", name], capture_output=True, check=False
            ).returncode
            == 0
        )

    def image_id(self, name: str) -> str:
        fmt = "{{.FromImageID}}"
        return self._out(["buildah", "inspect", "--type", "image", "--format", fmt, name]).strip()

    def image_size(self, name: str) -> int:
        """Uncompressed size of the image (all its layers), in bytes, as buildah reports it."""
        images = json.loads(self._out(["buildah", "images", "--json", name]))
        return max((_bytes(str(img.get("size", "0"))) for img in images), default=0)

    # ---- helpers -----------------------------------------------------------------------
    def _host_pip_mounts(self) -> list[str]:
        """Read-only mounts for RUN steps: the host's pip configuration and CA bundle.

        Where PyPI is reached through a mirror or an intercepting proxy, the host's pip is set up
        for it; the build's pip needs the same settings. Nothing of this ends up in the image.
        """
        mounts: list[str] = []
        for conf in ("/etc/pip.conf", "/etc/xdg/pip/pip.conf"):
            if Path(conf).is_file():
                mounts += ["-v", f"{conf}:/etc/pip.conf:ro"]
                break
        bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        if bundle.is_file():
            mounts += ["-v", f"{bundle}:{bundle}:ro"]
        return mounts

    def _prune(self, rootfs: Path) -> None:
        installed = self._out(["chroot", str(rootfs), "dpkg-query", "-W", "-f", "${Package}\\n"])
        prune = [p for p in PRUNE_PACKAGES if p in installed.split()]
        if prune:
            self.log(f"[image] pruning unused dependencies: {' '.join(prune)}")
            self._out(["chroot", str(rootfs), "dpkg", "--purge", "--force-depends", *prune])
        self._out(
            [
                "chroot", str(rootfs), "python3", "-c",
                "import torch; assert not torch.cuda.is_available(); torch.ones(2).sum()",
            ]
        )  # fmt: skip

    def _slim(self, rootfs: Path) -> None:
        excludes = rootfs / "etc/dpkg/dpkg.cfg.d/edge-allocator-slim"
        excludes.parent.mkdir(parents=True, exist_ok=True)
        excludes.write_text(_DPKG_EXCLUDES)
        for rel in _SLIM_REMOVE:
            target = rootfs / rel
            if target.is_dir():
                for child in target.iterdir():
                    _rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        doc = rootfs / "usr/share/doc"
        if doc.is_dir():
            for pkg in doc.iterdir():
                if pkg.is_dir() and not pkg.is_symlink():
                    for f in pkg.iterdir():
                        if f.name != "copyright":
                            _rmtree(f) if f.is_dir() and not f.is_symlink() else f.unlink()
        locale = rootfs / "usr/share/locale"
        if locale.is_dir():
            for child in locale.iterdir():
                if child.name != "locale.alias":
                    _rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        for leftover in ("var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin"):
            (rootfs / leftover).unlink(missing_ok=True)

    def _out(self, cmd: Sequence[str]) -> str:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ImageError(
                f"`{' '.join(cmd[:3])} ...` failed (exit {proc.returncode}): "
                f"{proc.stderr.strip()[-2000:]}"
            )
        return proc.stdout

    def _run(self, cmd: Sequence[str], what: str, progress: str = "") -> None:
        """Run a long step, printing lines that start with ``progress`` and a heartbeat."""
        started = last = time.monotonic()
        proc = subprocess.Popen(
            list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            line = line.rstrip()
            tail = [*tail[-40:], line]
            now = time.monotonic()
            if progress and line.startswith(progress) and ("STEP" in progress or now - last > 10):
                self.log(f"[image] {line[:160]}")
                last = now
            elif now - last > 30:
                self.log(f"[image] {what}: {now - started:.0f}s")
                last = now
        if proc.wait() != 0:
            raise ImageError(f"{what} failed (exit {proc.returncode}):\n" + "\n".join(tail))


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _bytes(text: str) -> int:
    """``1.19 GB`` (as buildah prints sizes: decimal units) -> bytes."""
    units = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    number, _, unit = text.strip().partition(" ")
    return int(float(number) * units.get(unit.upper() or "B", 1))
