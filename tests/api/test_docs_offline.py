"""`/docs` (Swagger UI) and `/redoc` load everything from this service: every asset their
pages reference is served here, and neither the pages nor the stylesheets name another
host, so the docs work offline and behind firewalls."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

EXTERNAL = re.compile(r"(?:https?:)?//[^\s\"')]+", re.IGNORECASE)
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)""")


class References(HTMLParser):
    """The `src` and `href` of every element of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_nothing_from_another_host(app: FastAPI, page: str) -> None:
    client = TestClient(app)
    html = client.get(page)
    assert html.status_code == 200
    assert EXTERNAL.findall(html.text) == [], "the page names another host"
    parser = References()
    parser.feed(html.text)
    scripts = [ref for ref in parser.found if ref.endswith(".js")]
    assert scripts, "the page loads its script from somewhere"
    for reference in parser.found:
        assert reference.startswith("/") and not reference.startswith("//"), reference
        asset = client.get(reference)
        assert asset.status_code == 200 and len(asset.content) > 1000, reference
        if reference.endswith(".css"):
            for url in CSS_URL.findall(asset.text):
                assert url.startswith("data:") or not EXTERNAL.match(url), url
    assert "/openapi.json" in html.text


def test_swagger_ui_sends_the_document_to_no_outside_validator(app: FastAPI) -> None:
    html = TestClient(app).get("/docs").text
    assert '"validatorUrl": null' in html
    redirect = TestClient(app).get("/docs/oauth2-redirect")
    assert redirect.status_code == 200 and EXTERNAL.findall(redirect.text) == []
