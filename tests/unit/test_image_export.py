"""The image archive is written even when the cache folder does not exist yet.

The base image lives in buildah's own store, so a user whose cache folder is new (another
XDG_CACHE_HOME, a cleaned ~/.cache) skips the base build that used to create the folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from edge_allocator.devcluster.image import ImageBuilder


def test_export_creates_the_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh"))
    builder = ImageBuilder(tag="t", log=lambda _s: None)
    pushed: list[Sequence[str]] = []

    def fake_buildah(cmd: Sequence[str]) -> str:
        pushed.append(cmd)
        target = Path(cmd[-1].split(":")[1])  # oci-archive:<path>:<name>
        target.write_bytes(b"archive")  # buildah push needs the folder to exist
        return ""

    monkeypatch.setattr(builder, "_out", fake_buildah)
    assert not builder.cache.exists()
    builder.export("sha256:abc")
    assert builder.archive.read_bytes() == b"archive"
    assert builder.archive.with_suffix(".id").read_text() == "sha256:abc"
    assert pushed and pushed[0][:2] == ["buildah", "push"]
    builder.export("sha256:abc")  # up to date: no second push
    assert len(pushed) == 1
