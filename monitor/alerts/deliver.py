"""The Apprise edge: send one rendered message through one channel, get a plain outcome back.

    outcome = send(channel_config, render(alert))   # DeliveryOutcome(ok=..., error=...)

- One `apprise.Apprise` object per channel (per send: see `Channel`), holding every URL of
  the channel, so each outbox row gets exactly one outcome. A channel succeeds only when
  *every* URL accepted the message; a partial success is reported as a failure and the whole
  alert is retried later, so the URLs that accepted it the first time receive it again (the
  stable `alert-id` lets them drop the copy). Configure one channel per destination when
  that matters. URLs are checked when the `Channel` is built; a bad one fails every send.
- `send` never raises for a channel failure: Apprise's result (truthy only on SUCCESS) and
  any exception become `DeliveryOutcome(ok=False, error=<one line>)`. The reason comes from
  the WARNING/ERROR entries Apprise 2.x records per service (`AppriseResult.logs()`), and every
  reason passes `redact()` against the channel's URLs before it leaves this module.
- A TIMEOUT is a failure whose outcome is unknown (the receiver may have the message): it is
  retried, and the stable alert id makes the duplicate harmless.
- `send` sends a Message in its own format (`body_format` TEXT for plain text: Apprise escapes
  `<`, `>`, `&` for Slack and HTML channels); `send_alert` renders an alert per URL in that
  URL's format (`service_format`: HTML e-mail, Markdown, json:// fields, plain text). Apprise's
  own retries stay off (`?retry=0` default), the outbox retries.
- `configure_apprise_logging` is the one place that sets the `apprise` logger's level: a
  `Channel` puts it at WARNING unless someone set its level explicitly (at DEBUG Apprise logs
  full Slack tokens and webhook URLs), and `monitor.logs.setup_logging` forces the level the
  command line asks for. `SecretRedactor` is a logging filter for handlers that masks channel
  secrets in any record that reaches them. Both live in `monitor.alerts.secrets`, which loads
  Apprise only when given a URL, so that `monitor.logs` costs no Apprise at start-up.
- `console://` (or `console://stderr`) is a custom Apprise channel printing alerts, so the
  bundled example works without a mail server. It is registered by `register_console_channel`
  (called wherever a URL is checked or a `Channel` built); registering twice is harmless.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import sys
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import apprise

from monitor.alerts.console import CONSOLE_SCHEMA
from monitor.alerts.render import (
    alert_fields,
    digest_fields,
    render,
    render_digest,
    render_digest_html,
    render_digest_markdown,
    render_html,
    render_markdown,
)
from monitor.alerts.secrets import MASK, Secrets, configure_apprise_logging, redact
from monitor.alerts.secrets import SecretRedactor as SecretRedactor  # where it used to be
from monitor.textutil import one_line
from monitor.types import AlertContent, ChannelConfig, DigestContent, Message, TemplateConfig

SEND_TIMEOUT = 60.0  # seconds for a whole send through one channel (all its URLs)
REASON_MAX = 300  # characters of a failure reason

_register_lock = threading.RLock()


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one channel did with one message. `error` is one line without secrets."""

    ok: bool
    error: str | None = None


def mask_url(url: str) -> str:
    """A channel URL fit to show: Apprise's privacy form (host, user and path visible, secrets
    masked) without the defaults Apprise adds to the query; `console://...` as written;
    `scheme://***` for a URL Apprise cannot read."""
    register_console_channel()
    url = url.strip()
    scheme = url.split("://", 1)[0] if "://" in url else "?"
    service = instantiate(url) if "://" in url else None
    if service is not None and scheme.lower() == CONSOLE_SCHEMA:
        shown = url  # our plugin's privacy form drops the "stderr"
    elif service is not None:
        shown = _without_defaults(str(service.url(privacy=True)), url)
    else:
        shown = ""
    if not shown:
        shown = f"{scheme}://{MASK}"
    return redact(shown, [url])


def _without_defaults(shown: str, written: str) -> str:
    """`shown` without the query arguments that are not in `written` (Apprise's defaults)."""
    base, _, query = shown.partition("?")
    if not query:
        return shown
    wanted = _query_keys(urlsplit(written).query)
    kept = [p for p in query.split("&") if _query_keys(p) <= wanted]
    return f"{base}?{'&'.join(kept)}" if kept else base


def _query_keys(query: str) -> set[str]:
    return {unquote(p.partition("=")[0]).lower() for p in query.split("&") if p}


def url_problem(url: str) -> str | None:
    """Why Apprise cannot use `url` (no network needed), or None when it can."""
    register_console_channel()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not scheme:
        return "not an Apprise URL (expected scheme://...)"
    if scheme in ("http", "https"):  # Apprise has no plugin for bare web URLs
        hint = "json:// or form://" + (
            " (jsons:// or forms:// for HTTPS)" if scheme == "https" else ""
        )
        return f"unknown Apprise scheme {scheme!r}: for a webhook use {hint}"
    if scheme not in _plugins():
        return f"unknown Apprise scheme {scheme!r}"
    if instantiate(url) is None:
        return f"invalid {scheme}:// URL (see the Apprise documentation for its syntax)"
    return None


def privacy_form_hides(url: str) -> bool:
    """Whether Apprise masks part of `url` in its privacy form: the URL holds a secret."""
    register_console_channel()
    service = instantiate(url)
    try:
        return service is not None and service.url(privacy=True) != service.url(privacy=False)
    except Exception:  # a plugin bug: not known to hold a secret
        return False


# --- Apprise plumbing (the only place Apprise objects exist) -------------------------------


def _plugins() -> Any:
    """Apprise's plugin registry (a singleton), its plugins importable without warnings.

    Apprise's e-mail plugin imports PGPy, which imports the stdlib `imghdr`; on Python
    3.11/3.12 that first import emits a DeprecationWarning, which under `-W error` (as in our
    test suite) would break Apprise's plugin loading. Import `imghdr` once with exactly that
    warning silenced; it is then cached and never warns again.
    """
    if "imghdr" not in sys.modules:  # once: catch_warnings is process-global state
        with _register_lock, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*imghdr", category=DeprecationWarning)
            with contextlib.suppress(ImportError):  # gone in Python 3.13: Apprise shims it
                importlib.import_module("imghdr")
    manager: Any = apprise.NotificationManager  # a singleton: every call returns the same
    return manager()


def instantiate(url: str) -> Any:
    """An Apprise plugin object for `url`, or None. Never splits `url` at commas or spaces.
    Apprise's own records of a URL it cannot load (secrets in them) are dropped."""
    _plugins()
    mute = _ThisThread()  # Apprise logs a URL it cannot load, with part of its secrets
    log = logging.getLogger(apprise.LOGGER_NAME)
    log.addFilter(mute)
    try:
        return apprise.Apprise.instantiate(url)
    except Exception:  # defensive: instantiate suppresses plugin errors itself
        return None
    finally:
        log.removeFilter(mute)


class _ThisThread(logging.Filter):
    """Drops the records logged by the thread that created it."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return threading.get_ident() != self.thread


def _console_notify(
    body: str,
    title: str,
    notify_type: str,
    *args: Any,
    meta: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> bool:
    """The `console://` channel: write the alert to stdout (`console://stderr`: stderr)."""
    stream = sys.stderr if (meta or {}).get("host") == "stderr" else sys.stdout
    stream.write(f"=== {title}\n{body}\n\n" if title else f"{body}\n\n")
    stream.flush()
    return True


def register_console_channel() -> None:
    """Make `console://` an Apprise URL (idempotent, thread-safe)."""
    with _register_lock:
        if CONSOLE_SCHEMA in _plugins():
            return
        decorate: Any = apprise.decorators.notify
        decorate(on=CONSOLE_SCHEMA, name="news monitor console")(_console_notify)


class Channel:
    """One configured channel: its URLs checked once, and a secret-free `send`.

    Each `send` builds one fresh `apprise.Apprise` object holding every URL of the channel.
    Fresh on purpose: a reused Apprise plugin object throttles by *sleeping* in the sending
    thread (5.5 s between two e-mails, 1.2 s between two Slack posts), which would stall
    every other alert behind it. Pacing a channel is the outbox's job, not a hidden sleep.
    """

    def __init__(self, config: ChannelConfig, *, timeout: float = SEND_TIMEOUT) -> None:
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError("timeout must be a positive number of seconds")
        register_console_channel()
        configure_apprise_logging()
        self.name = config.name
        self.urls = config.urls
        self._timeout = timeout
        self._secrets = Secrets(config.urls)
        self._problems: list[str] = []
        for number, url in enumerate(config.urls, 1):
            if instantiate(url) is None:
                problem = url_problem(url) or "invalid URL"
                self._problems.append(f"URL {number} ({mask_url(url)}): {problem}")
        if not config.urls:
            self._problems.append("no URL configured")

    @staticmethod
    def _asset() -> Any:
        return apprise.AppriseAsset(
            app_id="news monitor",
            app_desc="news monitor alerts",
            secure_logging=True,
            result_log_disk_size=0,  # keep captured logs in memory: no temporary files
        )

    def _build(self) -> Any:
        asset = self._asset()
        notifier = apprise.Apprise(asset=asset)
        for url in self.urls:
            service = apprise.Apprise.instantiate(url, asset=asset)
            if service is None:
                raise ValueError(f"invalid URL {mask_url(url)}")
            notifier.add(service)
        return notifier

    def redact(self, text: str) -> str:
        return self._secrets.redact(text)

    def send(self, message: Message) -> DeliveryOutcome:
        """Send through every URL of the channel; ok only if all accepted. Never raises."""
        if self._problems:
            return self._fail("; ".join(self._problems))
        try:
            notifier = self._build()
        except Exception as exc:
            return self._fail(f"{type(exc).__name__}: {exc}")
        return self._notify(notifier, message)

    def send_alert(
        self, alert: AlertContent | DigestContent, template: TemplateConfig | None = None
    ) -> DeliveryOutcome:
        """Send an alert in each URL's own format (`service_format`): HTML e-mail with an
        `X-Alert-Id` header, Markdown (Slack: mrkdwn through Apprise), a webhook's JSON with
        an `alert` object of structured fields, plain text otherwise. Ok only if every URL
        accepted it. Never raises."""
        if self._problems:
            return self._fail("; ".join(self._problems))
        try:
            groups: dict[str, Any] = {}
            for url in self.urls:
                service: Any = apprise.Apprise.instantiate(url, asset=self._asset())
                if service is None:
                    raise ValueError(f"invalid URL {mask_url(url)}")
                kind = service_format(service)
                if kind == "html":
                    service.headers.setdefault("X-Alert-Id", alert.alert_id)
                elif kind == "json":
                    fields = (
                        digest_fields(alert)
                        if isinstance(alert, DigestContent)
                        else alert_fields(alert)
                    )
                    service.payload_extras.setdefault("alert", fields)
                if kind not in groups:
                    groups[kind] = apprise.Apprise(asset=self._asset())
                groups[kind].add(service)
        except Exception as exc:
            return self._fail(f"{type(exc).__name__}: {exc}")
        failures = []
        for kind, notifier in groups.items():
            outcome = self._notify(notifier, self._message(kind, alert, template))
            if not outcome.ok:
                failures.append(outcome.error or "failed")
        if failures:
            return DeliveryOutcome(ok=False, error=one_line("; ".join(failures), REASON_MAX))
        return DeliveryOutcome(ok=True)

    def _message(
        self, kind: str, alert: AlertContent | DigestContent, template: TemplateConfig | None
    ) -> Message:
        built = render_for(kind, alert)
        if template is None or not isinstance(alert, AlertContent):
            return built
        from monitor.alerts.templates import TemplateProblem, apply

        try:
            return apply(template, alert, self.name, kind, built)
        except TemplateProblem as exc:  # checked at load; never lose the alert over it
            logging.getLogger("monitor.alerts").warning(
                "template %s: %s; the built-in format was sent", template.name, exc
            )
            return built

    def _notify(self, notifier: Any, message: Message) -> DeliveryOutcome:
        formats = {"html": apprise.NotifyFormat.HTML, "markdown": apprise.NotifyFormat.MARKDOWN}
        try:
            result = notifier.notify(
                body=message.body,
                title=message.title,
                body_format=formats.get(message.format, apprise.NotifyFormat.TEXT),
                interpret_escapes=False,
                timeout=self._timeout,
            )
        except Exception as exc:  # Apprise should not raise; a bug there is a failed send
            return self._fail(f"{type(exc).__name__}: {exc}")
        try:
            if result:
                return DeliveryOutcome(ok=True)
            return self._fail(self._reason(result))
        except Exception as exc:
            return self._fail(f"{type(exc).__name__}: {exc}")
        finally:
            result.close()

    def _fail(self, reason: str) -> DeliveryOutcome:
        error = one_line(self.redact(reason), REASON_MAX)
        return DeliveryOutcome(ok=False, error=error or "failed")

    def _reason(self, result: Any) -> str:
        status = str(result.status.name)
        services = list(result)
        failed: list[str] = []
        for service in services:
            if service:
                continue
            seen: dict[str, None] = {}
            for entry in service.logs():
                if entry.level in ("WARNING", "ERROR", "CRITICAL"):
                    seen[one_line(str(entry.message))] = None
            detail = " / ".join(seen) or str(service.status.name).lower()
            failed.append(f"{service.name}: {detail}")
        if not failed:
            failed = [one_line(str(e.message)) for e in result.logs() if e.level != "INFO"]
        reason = "; ".join(failed) or "not accepted"
        if status == "PARTIAL":
            accepted = sum(1 for s in services if s)
            return (
                f"partial: {accepted} of {len(services)} URLs accepted"
                f" (the alert is retried on all of them): {reason}"
            )
        if status == "TIMEOUT":
            return f"timed out after {self._timeout:g}s (it may have been delivered): {reason}"
        if status == "NOMATCH":
            return f"no usable URL: {reason}"
        return reason


def render_for(kind: str, alert: AlertContent | DigestContent) -> Message:
    """The message of format `kind` ("html", "markdown", else plain text) for an alert or a
    digest."""
    if isinstance(alert, DigestContent):
        digests = {"html": render_digest_html, "markdown": render_digest_markdown}
        return digests.get(kind, render_digest)(alert)
    renderers = {"html": render_html, "markdown": render_markdown}
    return renderers.get(kind, render)(alert)


def service_format(service: Any) -> str:
    """Which of our formats an Apprise service gets: "html" (e-mail), "markdown" (Slack, and
    every service that declares Markdown: Telegram, Discord, Matrix, ...), "json" (json://
    webhooks: the plain text plus structured fields) or "text" (console://, the rest)."""
    from apprise.plugins.custom_json import NotifyJSON
    from apprise.plugins.email.base import NotifyEmail

    if isinstance(service, NotifyEmail):
        return "html"
    if isinstance(service, NotifyJSON):
        return "json"
    try:
        formats = service._formats()
    except Exception:  # a plugin without the usual attributes: plain text is always safe
        return "text"
    return "markdown" if apprise.NotifyFormat.MARKDOWN in formats else "text"


def send_alert(
    channel: ChannelConfig,
    alert: AlertContent | DigestContent,
    *,
    timeout: float = SEND_TIMEOUT,
    template: TemplateConfig | None = None,
) -> DeliveryOutcome:
    """Send one alert, in each URL's own format, through a channel built for this call."""
    try:
        built = Channel(channel, timeout=timeout)
    except Exception as exc:
        reason = redact(one_line(f"{type(exc).__name__}: {exc}"), channel.urls)
        return DeliveryOutcome(ok=False, error=one_line(reason, REASON_MAX))
    return built.send_alert(alert, template)


def send(
    channel: ChannelConfig, message: Message, *, timeout: float = SEND_TIMEOUT
) -> DeliveryOutcome:
    """Send one message through a channel built for this call (e.g. `notify-test`)."""
    try:
        built = Channel(channel, timeout=timeout)
    except Exception as exc:
        reason = redact(one_line(f"{type(exc).__name__}: {exc}"), channel.urls)
        return DeliveryOutcome(ok=False, error=one_line(reason, REASON_MAX))
    return built.send(message)
