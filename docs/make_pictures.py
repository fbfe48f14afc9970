"""Make docs/alert-email.png: an HTML e-mail alert as the monitor renders it, in headless
Chromium (`apt-get install chromium`). Run from the repository root:

    .venv/bin/python docs/make_pictures.py [OUTPUT.png]

The body is exactly what `alerts.render.render_html` gives the e-mail channel (Apprise sends
it as the HTML part of a multipart/alternative message); the frame around it shows the
subject and headers the way a mail client would. The sample item carries hostile text (a
`<script>`, a Slack mention, a phishing link) to show how it is neutralised.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from monitor.alerts.render import render_html
from monitor.types import AlertContent, Match

DOCS = Path(__file__).resolve().parent
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

SAMPLE = AlertContent(
    title="North Korean troops seen near Kursk, officials say <script>alert(1)</script>",
    link="https://news.example/world/2026/12/kursk-troops?utm_source=rss",
    feed="wire-europe",
    published=datetime(2026, 12, 5, 7, 42, tzinfo=UTC),
    matches=(
        Match(
            "nk-troops",
            ("North Korean troops", "Kursk"),
            "Ukrainian intelligence said North Korean troops had moved closer to the front "
            "in the Kursk region <!channel>, see evil.example/login for details.",
        ),
        Match("kursk", ("Kursk",), "… moved closer to the front in the Kursk region …"),
    ),
    alert_id="nm-5f0c2a9e41d7b38c6a10",
    item_id="nmi-93b1e07d2c4f6a8d5e21",
    also=("agency-feed", "regional-news"),
)


def email_page(content: AlertContent = SAMPLE) -> str:
    message = render_html(content)
    esc = html.escape
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(message.title)}</title>
<style>
 body {{ font-family: system-ui, sans-serif; background: #eef1f5; margin: 0; padding: 24px; }}
 .mail {{ background: #fff; max-width: 760px; margin: auto; border-radius: 8px;
         box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
 .head {{ padding: 16px 24px; border-bottom: 1px solid #dde2e8; color: #333; font-size: 14px; }}
 .head h1 {{ font-size: 20px; margin: 0 0 8px; }}
 .body {{ padding: 8px 24px 16px; }}
 mark {{ background: #ffe58a; }}
 blockquote {{ border-left: 3px solid #c5cdd8; margin: 8px 0; padding: 4px 12px; color: #333; }}
</style></head>
<body><div class="mail">
<div class="head"><h1>{esc(message.title)}</h1>
From: news monitor &lt;monitor@example.org&gt;<br>To: desk@example.org<br>
X-Alert-Id: {esc(content.alert_id)}</div>
<div class="body">
{message.body}
</div></div></body></html>
"""


def screenshot(page: str, out: Path, size: str = "900,680") -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "alert.html"
        source.write_text(page, encoding="utf-8")
        subprocess.run(
            [
                chromium,
                *FLAGS,
                f"--user-data-dir={Path(tmp) / 'profile'}",
                f"--screenshot={out}",
                f"--window-size={size}",
                source.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS / "alert-email.png"
    print(screenshot(email_page(), target))
