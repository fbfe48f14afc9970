"""Channel secrets: what in an Apprise URL is secret, and a logging filter that masks it.

What is secret in a channel URL is what Apprise's plugin for it says is private (see below);
so finding the secrets of a URL loads Apprise, but only then: this module imports Apprise (via
`monitor.alerts.deliver`) on the first URL it is given, never at import. `monitor.logs` puts a
`SecretRedactor` on its handler at every start, and a command whose config names no channel,
or no command at all (`--help`), then never pays for Apprise.

`configure_apprise_logging` sets the level of the `apprise` logger by its name, which needs no
import of Apprise either (Apprise never sets its logger's level itself).
"""

from __future__ import annotations

import base64
import difflib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlsplit

from monitor.alerts.console import is_console_url

MASK = "***"
APPRISE_LOGGER = "apprise"  # apprise.LOGGER_NAME


def _apprise_service(url: str) -> Any:
    """Apprise's plugin object for `url`, or None (Apprise imported here, on first use)."""
    from monitor.alerts.deliver import instantiate

    return instantiate(url)


# --- secrets -------------------------------------------------------------------------------
#
# What is secret in a channel URL is what Apprise's plugin says is private: the tokens its
# `template_tokens` mark `private`, and every part its privacy form (`url(privacy=True)`)
# hides. Added to those: a URL password (always), and query values Apprise shows but that are
# secrets by their name (`+Authorization=...`, `?token=...`) or by their look (a long mix of
# letters and digits, as in a webhook path). User names, hosts, paths and channel names stay
# readable. A secret is masked only where it stands as a whole token, never inside a word.

_SECRET_KEY = re.compile(
    r"pass|pwd|token|key|secret|auth|sig|cred|bearer|hook|access|session|code|apikey",
    re.IGNORECASE,
)
_HOSTNAME = re.compile(r"localhost|[\w\-]+(\.[\w\-]+)+|\[[0-9a-fA-F:.]+\]")
_TOKENISH = re.compile(r"(?=.*\d)(?=.*[A-Za-z])[\w\-.~+/=]{10,}")
_URL_DELIMITERS = "/?&=@:#;,"
_WORD = re.compile(r"\w")
MIN_SECRET = 3  # shorter values are not masked (a one-letter "password" would hit every "a")


def _secrets_of(url: str) -> set[str]:
    """Every substring of an Apprise URL that is a secret (and its encoded forms)."""
    url = url.strip()
    if is_console_url(url):  # our own channel: nothing secret (and no Apprise needed)
        return set()
    if "://" not in url:  # not URL-shaped at all: all of it may be a secret
        return _with_encodings([url])
    found: set[str] = set()
    service = _apprise_service(url)
    if service is not None:
        found |= _private_tokens(service, url)
        found |= _hidden_by_privacy_form(service)
    try:
        parts = urlsplit(url)
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        host, _, port = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:  # not parseable: everything after the scheme may be a secret
        return _with_encodings([*found, url.split("://", 1)[1]])
    if service is None:  # invalid for Apprise: its fields are unknown, assume the worst
        found |= {url, url.split("://", 1)[1], user, *parts.path.split("/")}
        if not _HOSTNAME.fullmatch(host):
            found.add(host)  # slack://TOKEN/...: the "host" is a token
    if password:
        found.add(password)
        credentials = f"{unquote(user)}:{unquote(password)}".encode()
        found.add(base64.b64encode(credentials).decode())  # an HTTP Basic header
    if port and not port.isdigit():
        found.add(port)  # tgram://BOT_ID:TOKEN/...
    for value in (user, host, *parts.path.split("/")):
        if _TOKENISH.fullmatch(value) and not _HOSTNAME.fullmatch(value):
            found.add(value)
    for key, value in query:
        if value and (_SECRET_KEY.search(key) or _TOKENISH.fullmatch(value)):
            found.add(value)
            credential = value.partition(" ")[2]  # "Bearer abc123", "Basic dXNl..."
            if credential:
                found.add(credential)
    return _with_encodings(found)


def _private_tokens(service: Any, url: str) -> set[str]:
    """The values of the plugin's fields that Apprise marks private (tokens, passwords...)."""
    private = {
        name
        for fields in (service.template_tokens, service.template_args)
        for name, spec in fields.items()
        if isinstance(spec, Mapping) and spec.get("private")
    }
    for name, spec in service.template_args.items():
        if isinstance(spec, Mapping) and spec.get("alias_of") in private:
            private.add(name)
    try:
        parsed = type(service).parse_url(url) or {}
    except Exception:  # defensive: instantiate just parsed the same URL
        parsed = {}
    found: set[str] = set()
    for name in private:
        value = parsed.get(name)
        values = value if isinstance(value, (list, tuple, set)) else [value]
        found |= {v for v in values if isinstance(v, str)}
    return found | {part for v in found for part in re.split(r"[:/@]", v) if len(part) >= 8}


def _hidden_by_privacy_form(service: Any) -> set[str]:
    """The parts of the plugin's URL that its privacy form replaces (`****`, `T...Q`)."""
    try:
        full, private = str(service.url(privacy=False)), str(service.url(privacy=True))
    except Exception:  # a plugin bug must not break logging
        return set()
    found: set[str] = set()
    matcher = difflib.SequenceMatcher(None, full, private, autojunk=False)
    for tag, start, end, _, _ in matcher.get_opcodes():
        if tag in ("replace", "delete") and start < end:
            while start > 0 and full[start - 1] not in _URL_DELIMITERS:
                start -= 1  # the whole field, not the letters the two forms differ in
            while end < len(full) and full[end] not in _URL_DELIMITERS:
                end += 1
            found.add(full[start:end])
    return found


def _with_encodings(found: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for s in found:
        for form in (s, unquote(s), unquote_plus(s), quote(s, safe=""), quote(unquote(s), safe="")):
            if len(form) >= MIN_SECRET:
                out.add(form)
    return out


def _pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any secret as a whole token: where a secret begins or ends with a
    letter or digit, the neighbouring character must not be one (a percent escape such as
    `%20` before it counts as a boundary). Longest first, so a token goes before its parts."""
    alternatives = []
    for secret in sorted(set(secrets), key=lambda s: (-len(s), s)):
        before = r"(?:(?<!\w)|(?<=%[0-9A-Fa-f]{2}))" if _WORD.match(secret[0]) else ""
        after = r"(?!\w)" if _WORD.match(secret[-1]) else ""
        alternatives.append(f"{before}{re.escape(secret)}{after}")
    return re.compile("|".join(alternatives)) if alternatives else None


class Secrets:
    """The compiled secrets of some channel URLs."""

    def __init__(self, urls: Iterable[str]) -> None:
        found: set[str] = set()
        for url in urls:
            found |= _secrets_of(url)
        self.pattern = _pattern(found)

    def redact(self, text: str) -> str:
        return text if self.pattern is None else self.pattern.sub(MASK, text)


def redact(text: str, urls: Sequence[str]) -> str:
    """`text` with every secret of `urls` (see above) that stands as a whole token replaced
    by `***`."""
    return Secrets(urls).redact(text)


class SecretRedactor(logging.Filter):
    """A logging filter (put it on handlers) that masks the secrets of channel URLs."""

    def __init__(self, urls: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = Secrets(urls)

    def set_urls(self, urls: Iterable[str]) -> None:
        """Replace the URLs whose secrets are masked (call on config reload)."""
        self._secrets = Secrets(urls)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        if secrets.pattern is not None:
            message = record.getMessage()
            masked = secrets.redact(message)
            if masked != message:
                record.msg, record.args = masked, None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = secrets.redact(record.exc_text)
            if record.stack_info:
                record.stack_info = secrets.redact(record.stack_info)
        return True


def configure_apprise_logging(level: int = logging.WARNING, *, force: bool = False) -> None:
    """Put the `apprise` logger at `level`, unless its level was set already (or `force`)."""
    log = logging.getLogger(APPRISE_LOGGER)
    if force or log.level == logging.NOTSET:
        log.setLevel(level)
