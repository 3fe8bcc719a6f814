"""Choosing the run's checkpointer: SQLite by default, PostgreSQL from ``--checkpoint`` or ``SIMCODER_CHECKPOINT``;
bad URLs and a missing extra are one-line errors (exit 2) that never show the password."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from graph import checkpoint
from graph import run as cli
from reference_sim.errors import InputError

URL = "postgresql://simcoder:s3cret-pw@db.example:5433/runs"


def test_sqlite_is_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(checkpoint.CHECKPOINT_ENV, raising=False)
    assert checkpoint.checkpoint_url(None) is None
    with checkpoint.open_saver(None, tmp_path) as saver:
        assert type(saver).__name__ == "SqliteSaver"
    assert (tmp_path / checkpoint.SQLITE_FILE).is_file()


def test_the_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(checkpoint.CHECKPOINT_ENV, "postgres://other@h/db")
    assert checkpoint.checkpoint_url(URL) == URL
    assert checkpoint.checkpoint_url(None) == "postgres://other@h/db"


@pytest.mark.parametrize(("flag", "env", "source"), [("sqlite:///x.db", None, "--checkpoint"),
                                                      (None, "mysql://u@h/db", checkpoint.CHECKPOINT_ENV)])
def test_a_url_that_is_not_postgres_is_refused_naming_where_it_came_from(
        flag: str | None, env: str | None, source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if env is None:
        monkeypatch.delenv(checkpoint.CHECKPOINT_ENV, raising=False)
    else:
        monkeypatch.setenv(checkpoint.CHECKPOINT_ENV, env)
    with pytest.raises(InputError, match=f"^{source}: expected a PostgreSQL URL"):
        checkpoint.checkpoint_url(flag)


def test_messages_show_the_host_and_database_but_never_the_credentials() -> None:
    assert checkpoint.where(URL) == "db.example:5433/runs"


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(InputError, match=r"pip install -e '\.\[postgres\]'"):
        checkpoint.save_settings(URL, "run", {})


def test_the_run_cli_refuses_a_bad_checkpoint_url_in_one_line(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--checkpoint", "sqlite:///x.db", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_BAD_INPUT
    assert err == ["error: --checkpoint: expected a PostgreSQL URL, postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE "
                   "(SQLite in the run folder is the default)"]


def test_resuming_a_run_that_is_nowhere_names_the_database_without_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(checkpoint, "load_settings", lambda url, run_id: None)
    assert cli.main(["--resume", "nope", "--out", str(tmp_path), "--checkpoint", URL]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "no such run to resume (its run.json is missing here or in db.example:5433/runs)" in err
    assert "s3cret-pw" not in err
