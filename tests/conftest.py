"""Shared fixtures: database URLs for SQLite files and the real PostgreSQL server.

`database_url` is parametrised: every test that takes it runs on a fresh SQLite file and, when
MONITOR_TEST_POSTGRES_URL names a server, on a fresh PostgreSQL schema (dropped afterwards).
Without that variable the PostgreSQL cases are skipped, saying why.

In CI (CI=true, as CI services set it, or MONITOR_FAIL_ON_SKIP=1, as .ci/run sets it) a
skipped test is a failure: a missing tool, server or data set must not let CI pass silently.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

FAIL_ON_SKIP = (
    os.environ.get("CI", "").lower() == "true" or os.environ.get("MONITOR_FAIL_ON_SKIP") == "1"
)
POSTGRES_URL = os.environ.get("MONITOR_TEST_POSTGRES_URL")
SKIP_POSTGRES = "MONITOR_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI, turn a skip (not an expected failure) into a failure that says why."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if FAIL_ON_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"skipped, and skips fail in CI (CI=true or MONITOR_FAIL_ON_SKIP=1): {reason}"
        )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a new, empty schema."""
    if not POSTGRES_URL:
        pytest.skip(SKIP_POSTGRES)
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"t_{uuid.uuid4().hex[:12]}"
    base = make_url(POSTGRES_URL)
    if base.drivername == "postgresql":
        base = base.set(drivername="postgresql+psycopg")
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'monitor.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """Commands configure the root logger (`main()` calls setup_logging): every test leaves
    the next one the logging it found."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
