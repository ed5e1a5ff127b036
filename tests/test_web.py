"""The page at ``/`` and its assets: served by voxserve itself, and open without a key."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from tests.support.api import LOCAL, ready_client
from voxserve.config import Settings
from voxserve.engines.fake import FakeEngine


def test_the_page_and_every_asset_it_names_come_from_voxserve(fake_client: TestClient) -> None:
    page = fake_client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:href|src)="(/[^"]+)"', page.text)
    assert sorted(assets) == ["/web/app.js", "/web/style.css"]
    assert "http://" not in page.text and "https://" not in page.text, "nothing from a CDN"
    for asset in assets:
        served = fake_client.get(asset)
        assert served.status_code == 200 and served.content
    assert fake_client.get("/web/app.js").headers["content-type"].startswith("text/javascript")
    assert fake_client.get("/nope").json()["error"]["code"] == "not_found", (
        "other paths keep the API's errors"
    )


def test_the_page_needs_no_key_but_the_api_does(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, default_engine="fake", auth={"enabled": True})
    with ready_client(settings, {"fake": FakeEngine(name="fake")}, base_url=LOCAL) as client:
        assert client.get("/").status_code == 200 and client.get("/web/app.js").status_code == 200
        assert client.get("/v1/engines").status_code == 401
