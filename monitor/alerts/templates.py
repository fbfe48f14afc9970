"""User templates for an alert's subject and body (issue 9): Jinja2 in its sandbox.

A `[[templates]]` entry names Jinja2 files for `subject` and/or `body`; it applies to the
alerts of its `rules` (first) or of its `channels`. Rendering is pure and safe:

- the sandbox (`jinja2.sandbox.SandboxedEnvironment`) refuses attribute tricks;
- `StrictUndefined`: an unknown variable is an error, found by `monitor check`, which renders
  every template against a sample alert in every format (`check_template`), and reported with
  the file and line;
- every variable from the feed is neutralised first (`render.neutralise`: no controls,
  markup, mentions, schemes or live hosts), like the built-in formats; then each output is
  escaped for the format it ends up in: HTML (e-mail) autoescapes, Markdown escapes every
  `{{ }}` output (`finalize`), the subject and plain text stay as neutralised text;
- `link` is the one live link (http(s) only), as in the built-in formats.

Variables: title, link (or none), feed, published (ISO 8601 UTC or "unknown"), rules (list),
terms (list), matches (list of {rule, terms, snippet}), also_reported_by (list of feeds),
alert_id, item_id, channel, format ("html", "markdown", "text" or "json").
Digests keep the built-in format.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import lru_cache
from types import TracebackType
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from monitor.alerts.render import (
    BODY_MAX,
    TITLE_MAX,
    alert_fields,
    iso_utc,
    md_escape,
)
from monitor.textutil import cap, one_line
from monitor.types import AlertContent, Match, Message, TemplateConfig

FORMATS = ("html", "markdown", "text", "json")


class TemplateProblem(Exception):
    """A template that does not compile or render: `where` is `file:line`."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def _identity(value: object) -> object:
    return value


def _md(value: object) -> object:
    if isinstance(value, str):
        return md_escape(value)
    return value


@lru_cache(maxsize=256)
def _compiled(file: str, source: str, kind: str) -> Any:
    finalize: Callable[[object], object] = _md if kind == "markdown" else _identity
    env = SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=kind == "html",
        finalize=finalize,
        keep_trailing_newline=False,
    )
    try:
        code = env.compile(source, name=file, filename=file)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"{file}:{exc.lineno}", exc.message or "syntax error") from None
    return env.template_class.from_code(env, code, env.make_globals(None))


def variables(alert: AlertContent, channel: str, kind: str) -> dict[str, object]:
    """The documented variables, every feed value neutralised."""
    fields = alert_fields(alert)
    return {
        "title": fields["title"],
        "link": fields["link"],
        "feed": fields["feed"],
        "published": iso_utc(alert.published),
        "rules": fields["rules"],
        "terms": fields["terms"],
        "matches": fields["matches"],
        "also_reported_by": fields["also_reported_by"],
        "alert_id": fields["alert_id"],
        "item_id": fields["item_id"],
        "channel": channel,
        "format": kind,
    }


def _line(file: str, tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == file:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _render(file: str, source: str, kind: str, values: dict[str, object]) -> str:
    template = _compiled(file, source, kind)
    try:
        return str(template.render(values))
    except TemplateError as exc:
        line = _line(file, sys.exc_info()[2])
        where = f"{file}:{line}" if line else file
        raise TemplateProblem(where, str(exc.message or exc)) from None


def apply(
    template: TemplateConfig, alert: AlertContent, channel: str, kind: str, built: Message
) -> Message:
    """The built-in `built` message with the template's subject and/or body (same format)."""
    values = variables(alert, channel, kind)
    title, body = built.title, built.body
    if template.subject is not None:
        subject_kind = "text"
        title = cap(one_line(_render(*template.subject, subject_kind, values)), TITLE_MAX)
    if template.body is not None:
        body_kind = kind if kind in ("html", "markdown") else "text"
        body = cap(_render(*template.body, body_kind, values), BODY_MAX)
    return Message(title=title or built.title, body=body, format=built.format)


SAMPLE = AlertContent(
    title="Sample <b>title</b> @here",
    link="https://example.org/story",
    feed="sample-feed",
    published=None,
    matches=(Match("sample-rule", ("Kursk",), "Fighting near Kursk continued."),),
    alert_id="nm-sample",
    item_id="nmi-sample",
    also=("other-feed",),
)


def check_template(template: TemplateConfig) -> list[TemplateProblem]:
    """Compile and render the template against a sample alert in every format."""
    problems: list[TemplateProblem] = []
    for part, kinds in ((template.subject, ("text",)), (template.body, FORMATS)):
        if part is None:
            continue
        for kind in kinds:
            try:
                _render(*part, "text" if kind == "json" else kind, variables(SAMPLE, "c", kind))
            except TemplateProblem as exc:
                if all(str(p) != str(exc) for p in problems):
                    problems.append(exc)
                break
    return problems
