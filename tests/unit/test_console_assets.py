"""The console's files as the API serves and the wheel ships them: nothing from elsewhere."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from alerting.feed import AlertFeed
from api.app import create_app
from api.deps import ApiContext
from api.routes.console import CONSOLE_DIR
from api.tokens import TokenService

REPO = Path(__file__).resolve().parents[2]
ASSETS = sorted(p for p in CONSOLE_DIR.rglob("*") if p.is_file())
# The one URL the page may name: the SVG namespace, an identifier that is never fetched.
ALLOWED_URLS = {"http://www.w3.org/2000/svg"}


def app_client(*, health_only: bool = False) -> TestClient:
    context = ApiContext(
        sessions=sessionmaker(create_engine("sqlite://")),
        tokens=TokenService("k" * 40),
        feed=AlertFeed(),
        clock=lambda: datetime.now(UTC),
    )
    return TestClient(create_app(context, health_only=health_only))


def test_the_page_is_served_at_the_root_with_a_same_origin_policy() -> None:
    response = app_client().get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="console/js/main.js"></script>' in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/console/js/main.js", "text/javascript"),
        ("/console/console.css", "text/css"),
        ("/console/favicon.svg", "image/svg+xml"),
    ],
)
def test_the_assets_are_served_with_their_types(path: str, media_type: str) -> None:
    response = app_client().get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["cache-control"] == "no-cache"


def test_processes_without_the_api_serve_no_console() -> None:
    assert app_client(health_only=True).get("/").status_code == 404


@pytest.mark.parametrize("asset", ASSETS, ids=lambda p: p.name)
def test_no_asset_names_another_origin(asset: Path) -> None:
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", asset.read_text()))
    assert urls <= ALLOWED_URLS


@pytest.mark.parametrize("module", sorted(CONSOLE_DIR.glob("js/*.js")), ids=lambda p: p.name)
def test_every_import_is_a_file_of_the_console(module: Path) -> None:
    for target in re.findall(r'from "([^"]+)"', module.read_text()):
        assert target.startswith("./"), f"{module.name} imports {target}"
        assert (module.parent / target).is_file(), f"{module.name}: no {target}"


def test_the_wheel_ships_every_asset() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["api"]
    package = CONSOLE_DIR.parent
    for asset in ASSETS:
        relative = asset.relative_to(package).as_posix()
        assert any(fnmatch(relative, p) for p in patterns), f"{relative} is not package data"
