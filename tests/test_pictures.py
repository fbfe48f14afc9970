"""docs/make_pictures.py renders the HTML e-mail alert in headless Chromium."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
    reason="chromium is not installed (apt-get install -y chromium)",
)
def test_the_email_picture_is_made_by_the_script(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_pictures", ROOT / "docs/make_pictures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = module.email_page()
    assert "<script" not in page and "‹script›" in page  # the sample's hostile text is inert
    shot = module.screenshot(page, tmp_path / "alert.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (ROOT / "docs/alert-email.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
