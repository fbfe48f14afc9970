"""Database set-up mistakes a new user makes: each is one clear line and exit 2, never a
traceback (a missing PostgreSQL driver, a SQLite folder that cannot be written) and the
read-only commands work on a database file the user may only read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Runs the CLI with psycopg made unimportable, as on a default install without the extra.
WITHOUT_PSYCOPG = (
    "import sys; sys.modules['psycopg'] = None; "
    "from monitor.cli import main; sys.exit(main(sys.argv[1:]))"
)


def monitor(*args: str, cwd: Path, code: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "monitor"]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def write_config(folder: Path, database: str) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f"""
[monitor]
database = "{database}"
[channels]
console = "console://"
[[feeds]]
name = "news"
url = "http://127.0.0.1:9/feed.xml"
[[rules]]
name = "kursk"
any = ["Kursk"]
""",
        encoding="utf-8",
    )
    return config


@pytest.mark.parametrize("command", ["check", "poll", "run", "feeds", "matches"])
def test_postgresql_without_its_driver_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    write_config(tmp_path, "postgresql://monitor@127.0.0.1:9/monitor")
    result = monitor(command, cwd=tmp_path, code=WITHOUT_PSYCOPG)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "PostgreSQL driver (psycopg 3) is not installed" in result.stderr
    assert "pip install 'news-monitor[postgres]'" in result.stderr
    assert "monitor.database" in result.stderr  # the key is named


def _as_nobody() -> list[str] | None:
    """A command prefix that drops root's privileges, or None where that is impossible."""
    if os.geteuid() != 0:
        return []  # already unprivileged: permissions apply
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def _shared_folder() -> Path:
    """A folder every user may enter (pytest's tmp_path is private to root)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="monitor-ro-"))
    folder.chmod(0o755)
    return folder


def test_a_sqlite_folder_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("setpriv is missing: cannot drop root's privileges to test permissions")
    base = _shared_folder()
    try:
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        write_config(base, f"sqlite:///{locked / 'monitor.db'}")
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "monitor", "feeds"],
            cwd=base,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert str(locked) in result.stderr
        assert "not writable" in result.stderr
    finally:
        shutil.rmtree(base)


def test_read_only_commands_work_on_a_read_only_database() -> None:
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("setpriv is missing: cannot drop root's privileges to test permissions")
    base = _shared_folder()
    try:
        data = base / "data"
        data.mkdir()
        config = write_config(base, f"sqlite:///{data / 'monitor.db'}")
        config.chmod(0o644)
        made = monitor("poll", cwd=base)  # creates and fills the database (feed unreachable)
        assert made.returncode == 0, made.stderr
        for path in data.iterdir():
            path.chmod(0o444)
        data.chmod(0o555)
        for args in (["matches"], ["feeds"], ["test-rule", "kursk", "--history"]):
            result = subprocess.run(
                [*prefix, sys.executable, "-m", "monitor", *args],
                cwd=base,
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            assert result.returncode == 0, (args, result.stderr)
            assert "Traceback" not in result.stderr
        feeds = subprocess.run(
            [*prefix, sys.executable, "-m", "monitor", "feeds"],
            cwd=base,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert "news" in feeds.stdout
    finally:
        data.chmod(0o755)
        shutil.rmtree(base)
