"""Settings on pydantic-settings: the custom sources behind ``Settings()`` and ``load_settings``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ecgcli.errors import ConfigError
from ecgcli.settings import EnvFileSource, EnvironSource, Settings, describe_settings, load_settings


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.upper().startswith("ECG_")]:
        monkeypatch.delenv(var)


def test_plain_settings_read_the_environment_and_dotenv_through_the_custom_sources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Path(".env").write_text("ECG_WORKERS=3\nECG_SAMPLING_RATE=500\nECG_DEVICE=cuda\n")
    monkeypatch.setenv("ECG_DEVICE", "cpu")
    s = Settings()
    assert (s.workers, s.sampling_rate, s.device) == (3, 500, "cpu")
    assert Settings(device="mps").device == "mps"  # keyword arguments are the flags, over everything
    sources = Settings.settings_customise_sources(Settings, None, None, None, None)  # type: ignore[arg-type]
    assert [type(x) for x in sources[1:]] == [EnvironSource, EnvFileSource]


def test_an_empty_value_resets_a_lower_source_to_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("ECG_RUNS_DIR=dot-runs\nECG_DEVICE=cpu\n")
    extra = Path("extra.env")
    extra.write_text("ECG_DEVICE=\n")
    monkeypatch.setenv("ECG_RUNS_DIR", "")
    rows = {r.name: r for r in describe_settings(extra)}
    assert (rows["runs_dir"].value, rows["runs_dir"].source) == (Path("runs"), "default")
    assert (rows["device"].value, rows["device"].source) == ("auto", "default")


def test_warnings_come_lowest_source_first_and_a_bad_unused_setting_is_its_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Path(".env").write_text("ECG_WORKRS=1\nECG_DEVICE=banana\n")
    extra = Path("extra.env")
    extra.write_text("ECG_CACHE_DIRR=x\n")
    monkeypatch.setenv("ECG_RUN_DIR", "y")
    seen: list[str] = []
    s = load_settings(extra, uses=("workers",), warn=seen.append)
    assert s.device == "auto"
    assert [w.split(":")[0] if " line " in w else w.split(" in ")[0] for w in seen] == [
        ".env line 1",
        "extra.env line 1",
        "unknown setting ECG_RUN_DIR",
    ]
    with pytest.raises(ConfigError, match=r"^invalid ECG_DEVICE at \.env line 2: "):
        load_settings(extra, uses=("device",))
