"""``edge-allocator extender --shadow-policy``: checked at start (a bad name stops it with an error
naming the flag), also from $EDGE_ALLOCATOR_SHADOW_POLICY, and passed by the chart."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from edge_allocator.extender import cli
from edge_allocator.extender.settings import Settings

CHART = Path(__file__).resolve().parents[2] / "charts" / "edge-allocator"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """What reaches ``serve``; nothing is started (and the test's logging is left alone)."""
    from edge_allocator.extender import server

    seen: list[Settings] = []

    def serve(settings: Settings) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr(server, "serve", serve)
    monkeypatch.setattr(cli, "_setup_logging", lambda level, as_json: None)
    monkeypatch.delenv(cli.SHADOW_ENV, raising=False)
    return seen


def test_no_shadow_by_default(served: list[Settings]) -> None:
    assert cli.run(_args()) == 0
    assert served[0].shadow_policy is None


def test_a_valid_shadow_policy_reaches_the_server(served: list[Settings]) -> None:
    assert cli.run(_args("--shadow-policy", "est-completion")) == 0
    assert served[0].shadow_policy == "est-completion"


def test_an_unknown_shadow_policy_stops_start_up_naming_the_flag(
    served: list[Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(_args("--shadow-policy", "no-such-policy")) == 2
    assert served == []
    err = capsys.readouterr().err
    assert "--shadow-policy 'no-such-policy'" in err
    assert "unknown policy" in err and "est-completion" in err  # the names it knows


def test_a_model_file_that_does_not_load_is_refused(
    served: list[Settings], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model")
    assert cli.run(_args("--shadow-policy", str(bad))) == 2
    assert served == []
    assert f"--shadow-policy {str(bad)!r}" in capsys.readouterr().err


def test_the_environment_sets_it_and_the_flag_wins(
    served: list[Settings], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cli.SHADOW_ENV, "latency")
    assert cli.run(_args()) == 0
    assert served[-1].shadow_policy == "latency"
    assert cli.run(_args("--shadow-policy", "random")) == 0
    assert served[-1].shadow_policy == "random"
    monkeypatch.setenv(cli.SHADOW_ENV, "")
    assert cli.run(_args()) == 0
    assert served[-1].shadow_policy is None
    monkeypatch.setenv(cli.SHADOW_ENV, "bogus")
    assert cli.run(_args()) == 2
    assert f"${cli.SHADOW_ENV} 'bogus'" in capsys.readouterr().err


def test_check_shadow_policy_accepts_what_put_v1_shadow_accepts() -> None:
    cli.check_shadow_policy("est-completion")
    with pytest.raises(ValueError, match=r"^--shadow-policy 'gnn@0\.0\.0-none': "):
        cli.check_shadow_policy("gnn@0.0.0-none")


# -- the chart ----------------------------------------------------------------------------------


def test_the_chart_has_a_shadow_model_value_off_by_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["extender"]["shadowModel"] == ""
    template = (CHART / "templates" / "extender.yaml").read_text()
    assert "--shadow-policy={{ . }}" in template
