"""The dispatcher console: ``GET /`` and its static files under ``/console/``.

Plain ES modules and CSS shipped in the package (``api/console/``), no build step and nothing
fetched from elsewhere at run time: the Content-Security-Policy below lets the page load only
from this server.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

# Everything from this origin only; no inline script, no CDN. `connect-src 'self'` covers
# fetch and the EventSource of the alert stream.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'; form-action 'self'"
)
# The files are not fingerprinted: let browsers keep them but ask (ETag) every time, so an
# upgrade reaches every dispatcher at the next load.
REVALIDATE = "no-cache"

router = APIRouter(include_in_schema=False)


@router.get("/")
def console_page() -> FileResponse:
    return FileResponse(
        CONSOLE_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={
            "Cache-Control": REVALIDATE,
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


@router.get("/visits")
def visits_page() -> FileResponse:
    """The community worker's phone page (today's visits)."""
    return FileResponse(
        CONSOLE_DIR / "visits.html",
        media_type="text/html; charset=utf-8",
        headers={
            "Cache-Control": REVALIDATE,
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


class ConsoleFiles(StaticFiles):
    """The console's scripts and styles, revalidated on every load."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = REVALIDATE
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount_console(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/console", ConsoleFiles(directory=CONSOLE_DIR), name="console")
