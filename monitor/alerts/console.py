"""`console://` (standard output) and `console://stderr`: our own channel, known without
Apprise, so a config that only prints alerts is checked, shown and redacted without importing
Apprise (~0.2 s of start-up). `deliver` registers it as an Apprise plugin for sending."""

from __future__ import annotations

import re

CONSOLE_SCHEMA = "console"
_CONSOLE_URL = re.compile(r"console://(?:stdout|stderr)?/?", re.IGNORECASE)


def is_console_url(url: str) -> bool:
    return url.strip().lower().startswith(CONSOLE_SCHEMA + "://")


def console_url_problem(url: str) -> str | None:
    """Why a console:// URL is not usable, or None."""
    if _CONSOLE_URL.fullmatch(url.strip()):
        return None
    return "console:// takes nothing or 'stderr' (console://, console://stderr)"
