"""Where trapgui keeps its files (flags > env > settings > platform default) and the settings
file (atomic save, unknown keys kept, bad values fall back to defaults)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trapgui.cli.context import CliContext
from trapgui.cli.main import build_parser
from trapgui.config import Settings, default_paths, load_settings, save_settings


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("TRAPGUI_CONFIG_DIR", "TRAPGUI_DATA_DIR", "TRAPGUI_DB"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    return tmp_path


def test_platform_defaults(clean_env):
    p = default_paths()
    assert p.data_dir == clean_env / "xdg-data" / "trapgui"
    assert p.config_dir == clean_env / "xdg-config" / "trapgui"
    assert p.db_path == p.data_dir / "trapgui.sqlite3"
    assert p.settings_file == p.config_dir / "settings.json"
    assert p.models_dir == p.data_dir / "models"


def test_home_fallback_without_xdg(clean_env, monkeypatch):
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    p = default_paths()
    assert p.data_dir == clean_env / "home" / ".local" / "share" / "trapgui"
    assert p.config_dir == clean_env / "home" / ".config" / "trapgui"


def test_precedence_flag_env_settings_default(clean_env, monkeypatch):
    t = clean_env
    from_settings = default_paths(settings_data_dir=str(t / "s-data"),
                                  settings_db_path=str(t / "s.db"))
    assert (from_settings.data_dir, from_settings.db_path) == (t / "s-data", t / "s.db")
    monkeypatch.setenv("TRAPGUI_DATA_DIR", str(t / "e-data"))
    monkeypatch.setenv("TRAPGUI_DB", str(t / "e.db"))
    monkeypatch.setenv("TRAPGUI_CONFIG_DIR", str(t / "e-config"))
    from_env = default_paths(settings_data_dir=str(t / "s-data"), settings_db_path=str(t / "s.db"))
    assert (from_env.data_dir, from_env.db_path, from_env.config_dir) == (
        t / "e-data", t / "e.db", t / "e-config")
    from_flags = default_paths(config_dir=t / "f-config", data_dir=t / "f-data",
                               db_path=t / "f.db", settings_data_dir=str(t / "s-data"),
                               settings_db_path=str(t / "s.db"))
    assert (from_flags.data_dir, from_flags.db_path, from_flags.config_dir) == (
        t / "f-data", t / "f.db", t / "f-config")


def test_db_follows_the_data_dir_unless_set(clean_env):
    assert default_paths(data_dir=clean_env / "d").db_path == clean_env / "d" / "trapgui.sqlite3"


def test_tilde_is_expanded(clean_env):
    p = default_paths(db_path="~/cat.sqlite3")
    assert p.db_path == clean_env / "home" / "cat.sqlite3"


def test_cli_context_reads_settings_from_the_config_dir(clean_env):
    cfg = clean_env / "cfg"
    save_settings(Settings(db_path=str(clean_env / "from-settings.db"), night_cutoff_hour=9),
                  cfg / "settings.json")
    args = build_parser().parse_args(["--config-dir", str(cfg), "nights"])
    ctx = CliContext.from_args(args)
    assert ctx.paths.db_path == clean_env / "from-settings.db"
    assert ctx.settings.night_cutoff_hour == 9
    args = build_parser().parse_args(["--config-dir", str(cfg), "--db", str(clean_env / "flag.db"),
                                      "nights"])
    assert CliContext.from_args(args).paths.db_path == clean_env / "flag.db"


def test_round_trip_and_unknown_keys_kept(tmp_path):
    path = tmp_path / "cfg" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"top_k": 3, "future_option": {"a": [1, 2]}, "theme": "dark"}))
    s = load_settings(path)
    assert s.top_k == 3 and s.extra == {"future_option": {"a": [1, 2]}, "theme": "dark"}
    s.add_recent_folder("/traps/a")
    save_settings(s, path)
    raw = json.loads(path.read_text())
    assert raw["future_option"] == {"a": [1, 2]} and raw["theme"] == "dark"
    assert "extra" not in raw and raw["recent_folders"] == ["/traps/a"]
    again = load_settings(path)
    assert again == s


def test_missing_or_unreadable_file_gives_defaults(tmp_path):
    assert load_settings(tmp_path / "none.json") == Settings()
    bad = tmp_path / "bad.json"
    bad.write_text("{ this is not json")
    assert load_settings(bad) == Settings()
    bad.write_text("[1, 2, 3]")
    assert load_settings(bad) == Settings()


@pytest.mark.parametrize("key, value", [
    ("top_k", "five"),  # wrong type
    ("detection_threshold", True),  # a bool is not a number here
    ("night_cutoff_hour", 30),  # right type, out of range
    ("detection_batch_size", 0),
    ("detection_batch_size", None),  # null where a value is required
    ("classification_threshold", 1.5),
    ("remote_base_url", "ftp://x"),
])
def test_bad_values_fall_back_to_defaults(tmp_path, key, value, caplog):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({key: value, "loader_threads": 3}))
    s = load_settings(path)
    assert getattr(s, key) == getattr(Settings(), key)
    assert s.loader_threads == 3  # the good value next to it is kept
    assert s.validate() == []
    assert caplog.records  # the user's mistake is logged, not silent


def test_optional_models_may_be_null(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"binary_classifier": None, "species_classifier": "quebec"}))
    s = load_settings(path)
    assert s.binary_classifier is None and s.species_classifier == "quebec"


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "settings.json"
    save_settings(Settings(top_k=4), path)
    before = path.read_text()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        save_settings(Settings(top_k=9), path)
    assert path.read_text() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]  # no temp left
    assert os.stat(path).st_size > 0
    assert load_settings(Path(path)).top_k == 4
