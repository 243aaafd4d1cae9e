"""Paths, profiles in config.yaml, credential order, exit codes: no server needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.errors import AuthenticationFailed, NetworkError, NotFound, PermissionDenied
from xnatctl.connect import DestOptions, dest_client, resolve_credentials
from xnatctl.context import AppContext
from xnatctl.errors import CliError, ConfigFileError, ExitCode, UsageError, describe, exit_code_for
from xnatctl.paths import Paths
from xnatctl.profiles import Profile, ProfileStore, normalize_url
from xnatctl.sessions import CachedSession


def test_paths_follow_explicit_variable_then_xdg_then_home():
    p = Paths.from_env({"HOME": "/h", "XNATCTL_CONFIG_DIR": "/c", "XDG_CONFIG_HOME": "/x"})
    assert p.config_dir == Path("/c")
    assert p.state_db_path == Path("/c/transfer.db")
    p = Paths.from_env({"HOME": "/h", "XDG_CONFIG_HOME": "/x", "XDG_STATE_HOME": "/s"})
    assert (p.config_dir, p.state_dir) == (Path("/x/xnatctl"), Path("/s/xnatctl"))
    p = Paths.from_env({"HOME": "/h"})
    assert (p.config_dir, p.state_dir) == (
        Path("/h/.config/xnatctl"),
        Path("/h/.local/state/xnatctl"),
    )


def test_inventory_stores_go_under_the_state_directory_unless_named():
    p = Paths.from_env({"HOME": "/h", "XDG_STATE_HOME": "/s"})
    assert p.store_dir == Path("/s/xnatctl/inventories")
    p = Paths.from_env({"HOME": "/h", "XNATCTL_STORE_DIR": "/big/disk"})
    assert p.store_dir == Path("/big/disk")


@pytest.mark.parametrize(
    "bad", ["ftp://x.org", "xnat.example.org", "https://", "https://u:p@x.org", "http://x:99999"]
)
def test_bad_urls_are_usage_errors(bad):
    with pytest.raises(UsageError):
        normalize_url(bad)
    assert normalize_url("https://x.org:8443/xnat//") == "https://x.org:8443/xnat"


def test_first_profile_becomes_default_and_removal_moves_it(tmp_path):
    store = ProfileStore(tmp_path / "config.yaml")
    store.add(Profile("a", "https://a.org/"))
    store.add(Profile("b", "https://b.org", user="bob", timeout=5))
    fresh = ProfileStore(tmp_path / "config.yaml")
    assert fresh.default_name == "a"
    assert fresh.get("b") == Profile("b", "https://b.org", user="bob", timeout=5.0)
    fresh.remove("a")
    assert ProfileStore(tmp_path / "config.yaml").default_name == "b"


def test_comments_and_order_survive_a_rewrite(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "# my servers\n"
        "default_profile: prod\n"
        "profiles:\n"
        "  prod:\n"
        "    url: https://prod.org  # the big one\n"
        "    timeout: 30\n"
        "  stage:\n"
        "    url: https://stage.org\n"
    )
    store = ProfileStore(path)
    store.use("stage")
    text = path.read_text()
    assert "# my servers" in text and "# the big one" in text
    assert "default_profile: stage" in text
    assert text.index("prod:") < text.index("stage:")


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("profiles:\n  prod:\n    url: [unclosed\n    user: x\n")
    with pytest.raises(ConfigFileError) as info:
        ProfileStore(path).names()
    assert str(path) in info.value.message
    assert "line " in info.value.message
    assert info.value.code == ExitCode.USAGE


def test_a_bad_value_names_its_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("profiles:\n  ok:\n    url: https://ok.org\n  bad:\n    url: nope\n")
    with pytest.raises(ConfigFileError, match=r"line 4: profile 'bad'"):
        ProfileStore(path).get("bad")


def test_unknown_profile_lists_the_known_ones(tmp_path):
    store = ProfileStore(tmp_path / "config.yaml")
    store.add(Profile("prod", "https://p.org"))
    with pytest.raises(UsageError, match=r"unknown profile 'nope' \(known profiles: prod\)"):
        store.get("nope")


def test_credentials_order_inline_then_environment_then_cached_session():
    cached = CachedSession("https://x", "alice", "TOKEN", 0.0)
    common = {"profile_user": "alice", "cached": cached}
    c = resolve_credentials(
        inline_user="bob", inline_password="p1", env_user="eve", env_password="p2", **common
    )
    assert (c.user, c.password, c.token, c.source) == ("bob", "p1", None, "inline")
    c = resolve_credentials(
        inline_user=None, inline_password=None, env_user=None, env_password="p2", **common
    )
    assert (c.user, c.password, c.token, c.source) == ("alice", "p2", "TOKEN", "environment")
    c = resolve_credentials(
        inline_user=None, inline_password=None, env_user=None, env_password=None, **common
    )
    assert (c.user, c.password, c.token, c.source) == ("alice", None, "TOKEN", "session")
    c = resolve_credentials(
        inline_user=None,
        inline_password=None,
        env_user=None,
        env_password=None,
        profile_user="alice",
        cached=None,
    )
    assert (c.token, c.source) == (None, "none")


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (AuthenticationFailed("x", status=401), ExitCode.AUTH),
        (NetworkError("x"), ExitCode.UNREACHABLE),
        (NotFound("x", status=404), ExitCode.NOT_FOUND),
        (PermissionDenied("x", status=403), ExitCode.PERMISSION),
        (UsageError("x"), ExitCode.USAGE),
        (CliError("x", code=ExitCode.DRIFT), ExitCode.DRIFT),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED),
        (RuntimeError("boom"), ExitCode.FAILED),
    ],
)
def test_exit_codes(exc, code):
    assert exit_code_for(exc) == code
    line = describe(exc)
    assert line.startswith("error: ") and "\n" not in line


def test_describe_joins_cause_and_hint():
    assert (
        describe(CliError("it broke.\nbadly", hint="do this")) == "error: it broke. badly. Do this"
    )


def _ctx(tmp_path) -> AppContext:
    return AppContext.create(env={"XNATCTL_CONFIG_DIR": str(tmp_path), "HOME": str(tmp_path)})


def test_dest_client_wants_exactly_one_destination(tmp_path):
    ctx = _ctx(tmp_path)
    with pytest.raises(UsageError, match="not both"):
        dest_client(ctx, DestOptions(profile="dst", url="https://d.org"))
    with pytest.raises(UsageError, match="no destination"):
        dest_client(ctx, DestOptions())
    with pytest.raises(UsageError, match="need --dest-url"):
        dest_client(ctx, DestOptions(profile="dst", user="bob", password="pw"))
    c = dest_client(ctx, DestOptions(url="https://d.org/", user="bob", password="pw"), workers=8)
    assert (c.url, c.user, c.has_password) == ("https://d.org", "bob", True)


def test_dest_client_reads_the_password_from_stdin(tmp_path, monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO("from-stdin\n"))
    c = dest_client(
        _ctx(tmp_path), DestOptions(url="https://d.org", user="bob", password_stdin=True)
    )
    assert c._password == "from-stdin"


def test_json_helper_prints_only_json(tmp_path, capsys):
    _ctx(tmp_path).print_json({"a": [1, 2]})
    assert json.loads(capsys.readouterr().out) == {"a": [1, 2]}


def test_console_script_entry_runs_and_exits_with_codes(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    ok = subprocess.run(
        [sys.executable, "-m", "xnatctl", "--version"], cwd=root, capture_output=True, text=True
    )
    assert ok.returncode == 0 and ok.stdout.startswith("xnatctl ")
    bad = subprocess.run(
        [sys.executable, "-m", "xnatctl", "config", "show", "nope"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"XNATCTL_CONFIG_DIR": str(tmp_path), "HOME": str(tmp_path), "NO_COLOR": "1"},
    )
    assert bad.returncode == 64
    assert bad.stdout == ""
    assert bad.stderr.startswith("error: unknown profile 'nope'")


def test_an_unknown_top_level_key_is_reported_with_a_suggestion(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("defualt_profile: a\nprofiles:\n  a:\n    url: https://a.example\n")
    with pytest.raises(ConfigFileError) as info:
        ProfileStore(path).names()
    text = describe(info.value)
    assert "line 1: unknown setting 'defualt_profile' (did you mean 'default_profile'?)" in text
    assert exit_code_for(info.value) == ExitCode.USAGE
