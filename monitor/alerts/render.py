"""Turn an alert into one plain-text notification that is safe in every channel.

`render(alert) -> Message` is pure. Everything that comes from a feed (item title, matched
terms, snippet) is *neutralised* so that no channel can be made to ping, link or format by a
feed author, whatever the channel does with text:

- control characters (C0, C1, DEL), bidi overrides and line/paragraph separators go; runs of
  whitespace become one space, so feed text can never start a line of its own (and never
  forge our `Link:` or `alert-id:` lines, nor a mail header in the title);
- `<` and `>` become the look-alikes `‹` `›`: no Slack `<!channel>`, `<@U123>`,
  `<https://evil|click>`, no HTML `<script>`, whatever format a channel ends up using;
- `@` is followed by a zero-width space: no `@here`, `@channel`, `@everyone` (Discord parses
  those in plain text) and no live e-mail address;
- URL schemes are defanged (`http://` -> `hxxp://`, `https://` -> `hxxps://`, any other
  `scheme://` -> `scheme[://]`, and `javascript:`, `data:`, `vbscript:`, `mailto:`, `file:`
  -> `name[:]`), and the dots of anything that looks like a host name become `[.]`, so chat
  and mail clients that auto-link bare domains (`evil.example/login`) show dead text.

The item's own link line is the one live link. The pipeline only keeps http(s) links; here it
is still checked again (anything else is defanged like feed text) and characters that could
end a link early or ping someone (`<`, `>`, `|`, `"`, spaces, `@`, ...) are percent-encoded.

The message is capped (title 200, body 4000 characters by default) with a visible marker, so
Apprise never splits it into several messages: a split message that fails half-way would be
sent twice on retry. The footer lines `alert-id: ...` (one per item and channel) and `item-id:
...` (the same in every channel) always survive the cut, so receivers can drop a duplicate
delivery and correlate one item's alerts across channels.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from monitor.textutil import cap, one_line
from monitor.types import AlertContent, DigestContent, FeedHealth, HealthAlert, Match, Message

PRODUCT = "news monitor"
TITLE_MAX = 200
BODY_MAX = 4000
TRUNCATED = "[… truncated]"
ZWSP = "\u200b"

# Field caps inside the body, so the rule section always keeps most of the room.
_TITLE_IN_BODY_MAX = 500
_FEED_MAX = 200
_LINK_MAX = 2000
_RULE_MAX = 200
_TERMS_MAX = 500
_INPUT_MAX = 20_000  # feed text beyond this is never shown; don't spend time cleaning it

# Bidi embeddings/overrides/isolates: they can make text read differently than it is stored.
# Stricter than `feeds.parse._INVISIBLE` on purpose: that one keeps text matchable (bidi marks
# stay, whitespace controls separate words); here anything that could spoof a line goes.
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_DROP = {
    cp: None for cp in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]
} | {ord(c): None for c in _BIDI + "\u200b\u2060\ufeff"}
_WHITESPACE = re.compile(r"\s+")  # includes U+2028/U+2029, NBSP, ...

_SCHEME = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]{0,31})\s*:\s*//")
_COLON_SCHEME = re.compile(r"\b(javascript|vbscript|data|mailto|file)\s*:", re.IGNORECASE)
_WWW = re.compile(r"\b(www)\.", re.IGNORECASE)
# label.label...tld where the last label is 2+ letters: a host name to a link detector.
_HOST = re.compile(
    r"(?<![\w.\-])((?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63})(?![\w\-]|\.\w)"
)
_NETLOC = re.compile(r"[^\W_]([\w\-.]*[^\W_])?(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")
_LINK_SAFE = "/?#[]!$&'()*+,;=%~-._:"


def neutralise(text: str) -> str:
    """Feed text as one inert line: no controls, markup, mentions, schemes or live hosts."""
    text = text.translate(_DROP)
    text = one_line(text)  # U+2028/U+2029, NBSP, ... too
    text = text.replace("<", "‹").replace(">", "›")
    text = _SCHEME.sub(_defang_scheme, text)
    text = _COLON_SCHEME.sub(lambda m: f"{m.group(1)}[:]", text)
    text = _WWW.sub(lambda m: f"{m.group(1)}[.]", text)
    text = _HOST.sub(lambda m: m.group(1).replace(".", "[.]"), text)
    return text.replace("@", "@" + ZWSP)


def _defang_scheme(m: re.Match[str]) -> str:
    scheme = m.group(1)
    lower = scheme.lower()
    if lower in ("http", "https"):
        return "hxxp" + scheme[4:] + "://"
    return f"{scheme}[://]"


def _clean(text: str) -> str:
    return neutralise(text[:_INPUT_MAX])


def live_link(link: str) -> str:
    """The item's link for the one live line: http(s) only, percent-encoded where risky."""
    link = _WHITESPACE.sub("", link.translate(_DROP))
    try:
        parts = urlsplit(link)
    except ValueError:
        return neutralise(link)
    host = parts.netloc.rpartition("@")[2]  # user info in a link is a phishing trick: drop it
    if parts.scheme.lower() not in ("http", "https") or not _NETLOC.fullmatch(host):
        return neutralise(link)
    rest = link[link.index("//") + 2 + len(parts.netloc) :]
    return f"{parts.scheme.lower()}://{host}{quote(rest, safe=_LINK_SAFE)}"


def iso_utc(moment: datetime | None) -> str:
    """`2024-10-01T12:00:00Z`; a naive datetime is taken as UTC."""
    if moment is None:
        return "unknown"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_title(alert: AlertContent, limit: int = TITLE_MAX) -> str:
    """`[news monitor] rule-a, rule-b: item title` on one line, at most `limit` characters."""
    rules = ", ".join(dict.fromkeys(_clean(m.rule) for m in alert.matches)) or "alert"
    title = _clean(alert.title) or "(untitled)"
    return cap(f"[{PRODUCT}] {rules}: {title}", limit)


def _rule_block(match: Match) -> str:
    terms = ", ".join(_clean(t) for t in match.terms[:100] if t.strip()) or "-"
    lines = [
        f"Rule: {cap(_clean(match.rule), _RULE_MAX)}",
        f"Matched: {cap(terms, _TERMS_MAX)}",
    ]
    snippet = _clean(match.snippet)
    if snippet:
        lines.append(f"Snippet: {snippet}")
    return "\n".join(lines)


def _also(alert: AlertContent) -> str:
    """The other feeds that reported the same story, neutralised, on one line."""
    return cap(", ".join(_clean(f) for f in alert.also[:20]), 500)


def render_body(alert: AlertContent, limit: int = BODY_MAX) -> str:
    """The plain-text body: item, feed, time, one block per rule, then the ids."""
    link = cap(live_link(alert.link[:_INPUT_MAX]), _LINK_MAX) if alert.link else "(none)"
    head = "\n".join(
        [
            f"Title: {cap(_clean(alert.title) or '(untitled)', _TITLE_IN_BODY_MAX)}",
            f"Link: {link}",
            f"Feed: {cap(_clean(alert.feed), _FEED_MAX)}",
            f"Published: {iso_utc(alert.published)}",
        ]
        + ([f"Also reported by: {_also(alert)}"] if alert.also else [])
    )
    rules = "\n\n".join(_rule_block(m) for m in alert.matches)
    footer = f"alert-id: {cap(_clean(alert.alert_id), 200)}"
    if alert.item_id:
        footer += f"\nitem-id: {cap(_clean(alert.item_id), 200)}"
    body = f"{head}\n\n{rules}\n\n{footer}" if rules else f"{head}\n\n{footer}"
    if len(body) <= limit:
        return body
    # Cut the rule section (the only long part) and keep the footer whole.
    room = limit - len(head) - len(footer) - len(TRUNCATED) - 5
    kept = rules[: max(room, 0)].rstrip()
    return f"{head}\n\n{kept} {TRUNCATED}\n\n{footer}"[:limit]


def render(alert: AlertContent, *, title_max: int = TITLE_MAX, body_max: int = BODY_MAX) -> Message:
    """One notification for one item and the rules of one channel that it matched."""
    return Message(title=render_title(alert, title_max), body=render_body(alert, body_max))


# --- feed-health alerts (issue 8) ----------------------------------------------------------


def render_health(alert: HealthAlert) -> Message:
    """One feed-health notification: the feed is failing, stale, or back. Feed name, URL and
    error are neutralised like feed text (an error can quote what a server sent)."""
    feed = cap(_clean(alert.feed), _FEED_MAX)
    url = cap(_clean(alert.url), _LINK_MAX)
    if alert.state is FeedHealth.DEAD:
        title = f"[{PRODUCT}] feed {feed} is failing"
        what = f"Feed {feed} has been failing since {iso_utc(alert.since)}"
        error = cap(_clean(alert.error or "unknown"), 1000)
        lines = [f"{what}, last error: {error}"]
    elif alert.state is FeedHealth.STALE:
        title = f"[{PRODUCT}] feed {feed} has stopped publishing"
        lines = [f"Feed {feed} has published no new item since {iso_utc(alert.since)}"]
    else:
        title = f"[{PRODUCT}] feed {feed} is back"
        again = "publishing again" if alert.previous is FeedHealth.STALE else "fetched again"
        lines = [f"Feed {feed} is back: {again} at {iso_utc(alert.at)}"]
    lines += [f"URL: {url}", "", f"alert-id: {cap(_clean(alert.alert_id), 200)}"]
    return Message(title=cap(title, TITLE_MAX), body=cap("\n".join(lines), BODY_MAX))


# --- formats per channel -------------------------------------------------------------------
#
# The plain text above stays what every channel without a richer format gets (console://,
# unknown services). The formats below start from the same neutralised text (`_clean`), then
# escape it for their markup, so feed text can never become markup, a mention, a link or a
# script: neutralising already took `<`, `>`, schemes, hosts and `@` apart; escaping makes the
# rest (`*`, `_`, `[`, `&`, ...) literal. Only our own markup and the one live link are live.

# Feed text never starts a line (every line begins with our own label), so only the inline
# syntax needs escaping: emphasis, code, links/images (`[`, `]`), autolinks and HTML (`<`, `>`),
# entities (`&`), tables (`|`), strikethrough (`~`).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~])")


def md_escape(text: str) -> str:
    """CommonMark-literal inline text: every character inline Markdown could read, escaped."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _segments(snippet: str, terms: tuple[str, ...]) -> list[tuple[str, bool]]:
    """`snippet` cut into (text, is_a_matched_word) pieces: the matched terms found in it
    again, case-insensitively and as whole words (both already neutralised)."""
    words = sorted({t for t in terms if t.strip()}, key=len, reverse=True)
    if not words or not snippet:
        return [(snippet, False)] if snippet else []
    pattern = re.compile(
        r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE
    )
    out: list[tuple[str, bool]] = []
    last = 0
    for m in pattern.finditer(snippet):
        if m.start() > last:
            out.append((snippet[last : m.start()], False))
        out.append((m.group(), True))
        last = m.end()
    if last < len(snippet):
        out.append((snippet[last:], False))
    return out


def _rules_label(alert: AlertContent) -> str:
    return ", ".join(dict.fromkeys(cap(_clean(m.rule), _RULE_MAX) for m in alert.matches))


def render_subject(alert: AlertContent, limit: int = TITLE_MAX) -> str:
    """`[rule-a, rule-b] item title` on one line (an e-mail subject, a chat title)."""
    rules = _rules_label(alert) or "alert"
    return cap(f"[{rules}] {_clean(alert.title) or '(untitled)'}", limit)


def _link_of(alert: AlertContent) -> str | None:
    """The item's link if it can be a live http(s) link, else None."""
    if not alert.link:
        return None
    link = cap(live_link(alert.link[:_INPUT_MAX]), _LINK_MAX)
    return link if link.startswith(("http://", "https://")) and TRUNCATED not in link else None


def _cut_snippet(match: Match) -> tuple[str, tuple[str, ...]]:
    snippet = cap(_clean(match.snippet), 1000)
    terms = tuple(cap(_clean(t), _TERMS_MAX) for t in match.terms[:100] if t.strip())
    return snippet, terms


def render_html(alert: AlertContent) -> Message:
    """An HTML e-mail: subject `[rule] title`, a real link, matched words in <mark>.
    Apprise sends it as multipart/alternative with a plain-text part made from this HTML."""
    esc = html.escape
    title = esc(cap(_clean(alert.title) or "(untitled)", _TITLE_IN_BODY_MAX))
    link = _link_of(alert)
    heading = f'<a href="{esc(link)}">{title}</a>' if link else title
    parts = [
        f"<h2>{heading}</h2>",
        f"<p>Feed: {esc(cap(_clean(alert.feed), _FEED_MAX))}"
        f" &middot; Published: {esc(iso_utc(alert.published))}</p>",
    ]
    if alert.also:
        parts.append(f"<p>Also reported by: {esc(_also(alert))}</p>")
    for match in alert.matches:
        snippet, terms = _cut_snippet(match)
        shown = "".join(
            f"<mark><b>{esc(text)}</b></mark>" if hit else esc(text)
            for text, hit in _segments(snippet, terms)
        )
        parts.append(
            f"<p><b>Rule: {esc(cap(_clean(match.rule), _RULE_MAX))}</b><br>"
            f"Matched: {esc(', '.join(terms) or '-')}</p>"
        )
        if shown:
            parts.append(f"<blockquote>{shown}</blockquote>")
    if link:
        parts.append(f'<p><a href="{esc(link)}">{esc(link)}</a></p>')
    footer = f"alert-id: {esc(cap(_clean(alert.alert_id), 200))}"
    if alert.item_id:
        footer += f"<br>item-id: {esc(cap(_clean(alert.item_id), 200))}"
    parts.append(f'<p style="color:#777;font-size:small">{footer}</p>')
    return Message(title=render_subject(alert), body="\n".join(parts), format="html")


def render_markdown(alert: AlertContent) -> Message:
    """CommonMark (Telegram, Discord, Matrix, ...; Apprise turns it into Slack's mrkdwn):
    the title as a link, matched words in bold, everything from the feed escaped."""
    title = md_escape(cap(_clean(alert.title) or "(untitled)", _TITLE_IN_BODY_MAX))
    link = _link_of(alert)
    lines = [f"**[{title}](<{link}>)**" if link else f"**{title}**"]
    lines.append(
        f"Feed: {md_escape(cap(_clean(alert.feed), _FEED_MAX))} · "
        f"Published: {md_escape(iso_utc(alert.published))}"
    )
    if alert.also:
        lines.append(f"Also reported by: {md_escape(_also(alert))}")
    for match in alert.matches:
        snippet, terms = _cut_snippet(match)
        shown = "".join(
            f"**{md_escape(text)}**" if hit else md_escape(text)
            for text, hit in _segments(snippet, terms)
        )
        lines.append("")
        lines.append(f"Rule: **{md_escape(cap(_clean(match.rule), _RULE_MAX))}**")
        lines.append(f"Matched: {md_escape(', '.join(terms) or '-')}")
        if shown:
            lines.append(f"> {shown}")
    lines.append("")
    footer = f"alert-id: {md_escape(cap(_clean(alert.alert_id), 200))}"
    if alert.item_id:
        footer += f" · item-id: {md_escape(cap(_clean(alert.item_id), 200))}"
    lines.append(footer)
    body = "\n".join(lines)
    if len(body) > BODY_MAX:
        body = body[: BODY_MAX - len(TRUNCATED) - len(footer) - 4].rstrip("\\") + (
            f" {TRUNCATED}\n\n{footer}"
        )
    return Message(title=render_subject(alert), body=body, format="markdown")


def alert_fields(alert: AlertContent) -> dict[str, object]:
    """The structured fields a webhook receiver reads without parsing prose (neutralised
    like every format: a receiver that shows them cannot be made to ping or link)."""
    return {
        "alert_id": _clean(alert.alert_id),
        "item_id": _clean(alert.item_id),
        "rules": list(dict.fromkeys(_clean(m.rule) for m in alert.matches)),
        "title": cap(_clean(alert.title), _TITLE_IN_BODY_MAX),
        "link": _link_of(alert),
        "feed": cap(_clean(alert.feed), _FEED_MAX),
        "published": iso_utc(alert.published) if alert.published else None,
        "terms": list(dict.fromkeys(t for m in alert.matches for t in _cut_snippet(m)[1])),
        "also_reported_by": [_clean(f) for f in alert.also[:20]],
        "matches": [
            {
                "rule": _clean(m.rule),
                "terms": list(_cut_snippet(m)[1]),
                "snippet": _cut_snippet(m)[0],
            }
            for m in alert.matches
        ],
    }


# --- digests (issue 9) ---------------------------------------------------------------------
#
# One message listing several alerts of one channel: each item with its title, link, feed,
# rules and snippet, the same neutralising and escaping as a single alert. The digest's own
# id (`nmd-...`, from its key) is the one in the header/footer; each item keeps its alert id.

DIGEST_ITEMS_MAX = 100  # items listed in full; the rest are counted


def render_digest_subject(digest: DigestContent, limit: int = TITLE_MAX) -> str:
    rules = ", ".join(dict.fromkeys(r for a in digest.items for r in [_rules_label(a)] if r))
    count = len(digest.items)
    noun = "alert" if count == 1 else "alerts"
    return cap(f"[{rules or 'digest'}] {count} {noun} until {iso_utc(digest.due)}", limit)


def _digest_footer(digest: DigestContent) -> str:
    return f"alert-id: {cap(_clean(digest.alert_id), 200)}"


def render_digest(digest: DigestContent, limit: int = BODY_MAX * 4) -> Message:
    """The plain-text digest: one numbered block per item."""
    blocks = []
    for n, alert in enumerate(digest.items[:DIGEST_ITEMS_MAX], 1):
        link = cap(live_link(alert.link[:_INPUT_MAX]), _LINK_MAX) if alert.link else "(none)"
        lines = [
            f"{n}. {cap(_clean(alert.title) or '(untitled)', _TITLE_IN_BODY_MAX)}",
            f"   Link: {link}",
            f"   Feed: {cap(_clean(alert.feed), _FEED_MAX)} · {iso_utc(alert.published)}",
        ]
        if alert.also:
            lines.append(f"   Also reported by: {_also(alert)}")
        for match in alert.matches:
            snippet, terms = _cut_snippet(match)
            rule = cap(_clean(match.rule), _RULE_MAX)
            lines.append(f"   Rule: {rule} ({', '.join(terms) or '-'})")
            if snippet:
                lines.append(f"   {snippet}")
        blocks.append("\n".join(lines))
    rest = len(digest.items) - DIGEST_ITEMS_MAX
    if rest > 0:
        blocks.append(f"... and {rest} more")
    footer = _digest_footer(digest)
    body = "\n\n".join(blocks)
    if len(body) + len(footer) + 2 > limit:
        body = body[: limit - len(footer) - len(TRUNCATED) - 4].rstrip() + f" {TRUNCATED}"
    return Message(title=render_digest_subject(digest), body=f"{body}\n\n{footer}")


def render_digest_html(digest: DigestContent) -> Message:
    esc = html.escape
    parts = [f"<h2>{esc(render_digest_subject(digest))}</h2>", "<ol>"]
    for alert in digest.items[:DIGEST_ITEMS_MAX]:
        title = esc(cap(_clean(alert.title) or "(untitled)", _TITLE_IN_BODY_MAX))
        link = _link_of(alert)
        heading = f'<a href="{esc(link)}">{title}</a>' if link else title
        item = [
            f"<li><p><b>{heading}</b><br>",
            f"Feed: {esc(cap(_clean(alert.feed), _FEED_MAX))}"
            f" &middot; {esc(iso_utc(alert.published))}",
        ]
        if alert.also:
            item.append(f"<br>Also reported by: {esc(_also(alert))}")
        item.append("</p>")
        for match in alert.matches:
            snippet, terms = _cut_snippet(match)
            shown = "".join(
                f"<mark><b>{esc(text)}</b></mark>" if hit else esc(text)
                for text, hit in _segments(snippet, terms)
            )
            item.append(f"<p>Rule: <b>{esc(cap(_clean(match.rule), _RULE_MAX))}</b></p>")
            if shown:
                item.append(f"<blockquote>{shown}</blockquote>")
        item.append("</li>")
        parts.append("".join(item))
    parts.append("</ol>")
    rest = len(digest.items) - DIGEST_ITEMS_MAX
    if rest > 0:
        parts.append(f"<p>... and {rest} more</p>")
    parts.append(f'<p style="color:#777;font-size:small">{esc(_digest_footer(digest))}</p>')
    return Message(title=render_digest_subject(digest), body="\n".join(parts), format="html")


def render_digest_markdown(digest: DigestContent) -> Message:
    lines = [f"**{md_escape(render_digest_subject(digest))}**", ""]
    for n, alert in enumerate(digest.items[:DIGEST_ITEMS_MAX], 1):
        title = md_escape(cap(_clean(alert.title) or "(untitled)", _TITLE_IN_BODY_MAX))
        link = _link_of(alert)
        lines.append(f"{n}\\. **[{title}](<{link}>)**" if link else f"{n}\\. **{title}**")
        lines.append(
            f"Feed: {md_escape(cap(_clean(alert.feed), _FEED_MAX))} · "
            f"{md_escape(iso_utc(alert.published))}"
        )
        if alert.also:
            lines.append(f"Also reported by: {md_escape(_also(alert))}")
        for match in alert.matches:
            snippet, terms = _cut_snippet(match)
            shown = "".join(
                f"**{md_escape(text)}**" if hit else md_escape(text)
                for text, hit in _segments(snippet, terms)
            )
            lines.append(f"Rule: **{md_escape(cap(_clean(match.rule), _RULE_MAX))}**")
            if shown:
                lines.append(f"> {shown}")
        lines.append("")
    rest = len(digest.items) - DIGEST_ITEMS_MAX
    if rest > 0:
        lines.append(f"... and {rest} more")
    footer = md_escape(_digest_footer(digest))
    body = "\n".join(lines)
    if len(body) > BODY_MAX * 4:
        body = body[: BODY_MAX * 4 - len(footer) - len(TRUNCATED) - 4].rstrip("\\")
        body += f" {TRUNCATED}"
    return Message(
        title=render_digest_subject(digest), body=f"{body}\n\n{footer}", format="markdown"
    )


def digest_fields(digest: DigestContent) -> dict[str, object]:
    """A webhook's structured digest: its id, when its window ended, each item's fields."""
    return {
        "kind": "digest",
        "alert_id": _clean(digest.alert_id),
        "due": iso_utc(digest.due),
        "items": [alert_fields(a) for a in digest.items[:DIGEST_ITEMS_MAX]],
        "count": len(digest.items),
    }
