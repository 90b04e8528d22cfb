"""The API token: made once into the state dir, kept, private; found by the CLI; never sent
beyond loopback from the file."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from orchestrator import access
from orchestrator.errors import UserError
from orchestrator.settings import Settings


def settings_in(tmp_path: Path, **overrides: str) -> Settings:
    return Settings.from_env({}, state_dir=str(tmp_path / "state"), **overrides)


def test_the_first_start_makes_a_private_token_and_later_starts_keep_it(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    token = access.daemon_token(settings)
    path = tmp_path / "state" / "token"
    assert len(token) >= 40 and path.read_text() == token + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert access.daemon_token(settings) == token
    assert [p.name for p in path.parent.iterdir()] == ["token"]  # no temporary file left


def test_an_existing_state_dir_is_closed_to_others(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir(mode=0o755)
    os.chmod(tmp_path / "state", 0o755)
    access.daemon_token(settings_in(tmp_path))
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700


def test_starts_at_the_same_moment_agree_on_one_token(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(access.daemon_token(settings)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(tokens)) == 1 and len(tokens) == 8


def test_a_configured_token_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    assert access.daemon_token(settings_in(tmp_path, token="s3cret")) == "s3cret"
    assert not (tmp_path / "state" / "token").exists()


@pytest.mark.parametrize("token", ["with space", "new\nline", "é", "x" * 4097, "\x00"])
def test_a_token_that_cannot_be_a_header_value_is_refused(tmp_path: Path, token: str) -> None:
    with pytest.raises(UserError, match="ORCHESTRATOR_TOKEN: a token is 1-4096 visible ASCII"):
        access.daemon_token(settings_in(tmp_path, token=token))


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    access.daemon_token(settings)
    os.chmod(access.token_path(settings), 0o644)
    with pytest.raises(UserError, match="readable by other users .mode 0644.: delete it"):
        access.daemon_token(settings)


@pytest.mark.parametrize("content", [b"", b"\xff\xfe", b"two words\n"])
def test_a_broken_token_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    settings = settings_in(tmp_path)
    (tmp_path / "state").mkdir()
    path = access.token_path(settings)
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(UserError, match="token"):
        access.daemon_token(settings)


def test_a_token_file_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "elsewhere").write_text("planted\n")
    access.token_path(settings).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="cannot read or create the API token"):
        access.daemon_token(settings)


def test_the_cli_sends_the_variable_else_the_file_and_the_file_only_to_loopback(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    token = access.daemon_token(settings)
    assert access.client_token(settings, "http://127.0.0.1:7420") == token
    assert access.client_token(settings, "http://[::1]:7420") == token
    assert access.client_token(settings, "localhost:7420") == token
    for elsewhere in ("http://10.0.0.5:7420", "http://127.0.0.1.example.com:7420", "unix:///x.sock",
                      "http://127.0.0.1@evil.example:7420"):
        assert access.client_token(settings, elsewhere) == "", elsewhere
    explicit = settings_in(tmp_path, token="mine")
    assert access.client_token(explicit, "http://10.0.0.5:7420") == "mine"


def test_without_a_readable_token_file_the_cli_sends_nothing(tmp_path: Path) -> None:
    assert access.client_token(settings_in(tmp_path), "http://127.0.0.1:7420") == ""
