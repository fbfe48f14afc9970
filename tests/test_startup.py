"""Commands import only what they use: `--help` and `check` never load the heavy libraries.

Each case runs the CLI in a fresh interpreter and lists the top-level packages it imported.
(How long a start takes is measured by benchmarks/bench_startup.py, not here.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import contextlib, io, json, sys
from monitor.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def imported(*argv: str, env: dict[str, str] | None = None) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["code"], set(result["modules"])


def test_help_imports_no_heavy_library() -> None:
    code, modules = imported("--help")
    assert code == 0
    assert modules.isdisjoint({"sqlalchemy", "alembic", "apprise", "aiohttp", "pydantic"})
    assert modules.isdisjoint({"Stemmer", "feedparser", "apscheduler", "asyncio"})


def test_check_imports_no_database_or_network_library(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text((ROOT / "config.toml").read_text(encoding="utf-8"), encoding="utf-8")
    config.chmod(0o600)
    code, modules = imported("check", "--config", str(config))
    assert code == 0
    assert modules.isdisjoint({"sqlalchemy", "alembic", "aiohttp", "feedparser", "apscheduler"})
    assert "monitor" in modules and "pydantic" in modules  # the config was really loaded
    # the bundled config's only channel is console://, our own: no Apprise needed to check it
    assert "apprise" not in modules


def test_console_urls_are_checked_without_apprise(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[channels]\nout = "console://"\nerr = "console://stderr"\nbad = "console://printer"\n'
        '[[feeds]]\nname = "a"\nurl = "https://example.org/feed"\n'
        '[[rules]]\nname = "r"\nany = ["word"]\n',
        encoding="utf-8",
    )
    code, modules = imported("check", "--config", str(config))
    assert code == 2  # console://printer
    assert "apprise" not in modules


def test_check_without_channels_imports_no_apprise(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[feeds]]\nname = "a"\nurl = "https://example.org/feed"\n\n'
        '[[rules]]\nname = "r"\nany = ["word"]\n',
        encoding="utf-8",
    )
    code, modules = imported("check", "--config", str(config))
    assert code == 0
    assert "apprise" not in modules and "sqlalchemy" not in modules


def test_a_config_mistake_imports_no_database_library(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[monitor]\ninterval = 5\n", encoding="utf-8")
    code, modules = imported("check", "--config", str(config))
    assert code == 2
    assert "sqlalchemy" not in modules


def test_sqlalchemy_errors_are_recognised_without_importing_sqlalchemy_first() -> None:
    from sqlalchemy.exc import OperationalError

    from monitor.cli import _is_sqlalchemy_error

    assert _is_sqlalchemy_error(OperationalError("SELECT 1", {}, Exception("gone away")))
    assert not _is_sqlalchemy_error(ValueError("not a database error"))
