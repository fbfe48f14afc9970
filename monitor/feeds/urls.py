"""Item links: which ones are safe to use, and which article they name.

Pure functions on strings, no network.

`resolve_link(link, base)` turns a link as it appears in a feed into an absolute `http(s)` URL, or
None. Relative links are resolved against the feed's URL; anything that is not `http`/`https`
after resolution (`javascript:`, `data:`, `file:`, `mailto:`, a relative link without an
`http(s)` base, ...) is refused, because links end up clickable in alerts. Like browsers, it
removes tabs and newlines anywhere and control characters and spaces at either end before
looking at the scheme (so `java\\tscript:` is refused too); spaces and control characters left
inside are percent-encoded. Otherwise the link is kept as published.

`canonical_link(url)` names "the same article" across feeds, for deduplicating alerts: scheme
and host lower-cased, the default port (80/443) and the fragment dropped, an empty path becomes
`/`, and tracking parameters (`TRACKING_PARAMS`, plus every name starting with a prefix in
`TRACKING_PREFIXES`, compared case-insensitively) removed. The other query parameters keep
their order and their exact spelling and encoding. Fragments that are client-side routes
(`#!...`, `#/...`) are kept, since they tell articles apart on such sites. Non-`http(s)` URLs,
and URLs that do not parse, are returned unchanged.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus, urljoin, urlsplit, urlunsplit

__all__ = [
    "TRACKING_PARAMS",
    "TRACKING_PREFIXES",
    "canonical_link",
    "mask_feed_url",
    "resolve_link",
]

#: Query parameter names (lower case) that only track the reader, never select content.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        # ad-click identifiers
        "fbclid",  # Facebook
        "gclid",  # Google Ads
        "gclsrc",
        "dclid",  # Google Display
        "gbraid",
        "wbraid",
        "msclkid",  # Microsoft Ads
        "yclid",  # Yandex
        "twclid",  # X/Twitter
        "ttclid",  # TikTok
        "li_fat_id",  # LinkedIn
        "igshid",  # Instagram
        "igsh",
        "srsltid",  # Google Merchant
        "_ga",  # Google Analytics cross-domain linker
        "_gl",
        # e-mail and marketing automation
        "mc_cid",  # Mailchimp
        "mc_eid",
        "_hsenc",  # HubSpot
        "_hsmi",
        "__hstc",
        "__hssc",
        "__hsfp",
        "hsctatrk",
        "mkt_tok",  # Marketo
        "vero_id",  # Vero
        "vero_conv",
        "oly_anon_id",  # Omeda
        "oly_enc_id",
        "rb_clickid",
        "s_cid",  # Adobe
        "ef_id",
        # analytics suites used by news sites
        "xtor",  # AT Internet (Le Monde, France 24, ...)
        "at_medium",
        "at_campaign",
        "at_platform",
        "at_format",
        "at_link",
        "at_creation",
        "at_variant",
        "at_send_date",
        "at_recipient_id",
        "at_recipient_list",
        "at_custom1",
        "at_custom2",
        "at_custom3",
        "at_custom4",
        "ns_mchannel",  # comScore (BBC)
        "ns_source",
        "ns_campaign",
        "ns_linkname",
        "ns_fee",
        "pk_campaign",  # Matomo / Piwik
        "pk_kwd",
        "pk_source",
        "pk_medium",
        "pk_content",
        "piwik_campaign",
        "piwik_kwd",
        "wt_mc",  # Webtrends
        "wt.mc_id",
        "cmp",  # The Guardian (CMP=share_btn_tw)
        "ocid",  # MSN
        "smid",  # The New York Times
        "smtyp",
        "sr_share",
        "ref_src",  # X/Twitter
        "ref_url",
        "soc_src",
        "soc_trk",
    }
)

#: Query parameter name prefixes (lower case) that only track the reader.
TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "mtm_", "hsa_")

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_EDGE_JUNK = "".join(chr(c) for c in range(0x21))  # C0 controls and space
_INNER_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


def _percent_encode(match: re.Match[str]) -> str:
    return f"%{ord(match.group()):02X}"


def resolve_link(link: str | None, base: str | None = None) -> str | None:
    """`link` as an absolute http(s) URL, resolved against `base`; None if it is not one."""
    if not link:
        return None
    cleaned = _TAB_NEWLINE.sub("", link).strip(_EDGE_JUNK)
    if not cleaned:
        return None
    if base:
        base = _TAB_NEWLINE.sub("", base).strip(_EDGE_JUNK)
    try:
        # A link with a scheme of its own is never joined ("https:" alone is not the base).
        absolute = urljoin(base, cleaned) if base and not urlsplit(cleaned).scheme else cleaned
        parts = urlsplit(absolute)
    except ValueError:  # e.g. an unbalanced "[" in an IPv6 host
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return _INNER_UNSAFE.sub(_percent_encode, absolute)


def _is_tracking(param: str) -> bool:
    name = unquote_plus(param.partition("=")[0]).strip().lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def _netloc(netloc: str, scheme: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):  # IPv6 literal: "[::1]:8080"
        close = hostport.find("]")
        host, port = hostport[: close + 1], hostport[close + 1 :].removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    host = host.lower()
    if len(host) > 1 and host.endswith("."):  # "example.org." is "example.org"
        host = host[:-1]
    if port in ("", _DEFAULT_PORTS[scheme]):
        return f"{userinfo}{at}{host}"
    return f"{userinfo}{at}{host}:{port}"


def canonical_link(url: str) -> str:
    """The article `url` names, for "same article in several feeds"; see the module doc."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        return url
    query = "&".join(p for p in parts.query.split("&") if p and not _is_tracking(p))
    fragment = parts.fragment if parts.fragment.startswith(("!", "/")) else ""
    return urlunsplit((scheme, _netloc(parts.netloc, scheme), parts.path or "/", query, fragment))


# --- showing a feed URL --------------------------------------------------------------------

# Query keys whose values are credentials (compared lower-case, `-` read as `_`).
_SECRET_KEYS = frozenset(
    {
        "token",
        "access_token",
        "auth",
        "auth_token",
        "authtoken",
        "key",
        "api_key",
        "apikey",
        "secret",
        "password",
        "passwd",
        "pass",
        "pw",
        "sig",
        "signature",
        "session",
        "sessionid",
        "private_token",
        "feed_token",
        "hash",
    }
)
# A value that looks like a generated token whatever its key: long, letters and digits mixed.
_TOKEN_LIKE = re.compile(r"(?=[^&]*[0-9])(?=[^&]*[A-Za-z])[A-Za-z0-9_\-.~%]{20,}")


def mask_feed_url(url: str) -> str:
    """`url` fit to show: a userinfo password and token-like query values become `***`.

    A query value is masked when its key names a credential (`token`, `key`, `api_key`,
    `sig`, ...) or when it looks generated (20+ characters of letters and digits mixed).
    Pure; never raises (a URL it cannot split comes back with only its userinfo masked)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"(//[^/:@\s]*):[^@/\s]*@", r"\1:***@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hostport}"
    query = parts.query
    if query:
        pairs = []
        for pair in query.split("&"):
            key, eq, value = pair.partition("=")
            name = unquote(key).lower().replace("-", "_")
            if eq and value and (name in _SECRET_KEYS or _TOKEN_LIKE.fullmatch(value)):
                value = "***"
            pairs.append(f"{key}{eq}{value}")
        query = "&".join(pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
