"""The FastAPI app factory."""

from __future__ import annotations

from fastapi import FastAPI

from api.deps import ApiContext
from api.openapi import complete
from api.problems import UNAUTHORIZED
from api.routes import (
    alert_stream,
    alerts,
    audit,
    auth,
    commands,
    dead_letters,
    devices,
    elders,
    health,
    stats,
    telemetry,
    users,
    visits,
)
from api.routes.console import mount_console

DESCRIPTION = """
anxin (安心) serves the 12349 elderly-care hotline: the alert queue that dispatchers work.
Authenticate with `POST /api/v1/auth/token`, then send `Authorization: Bearer <token>`.
"""


def create_app(context: ApiContext, *, health_only: bool = False) -> FastAPI:
    """The API; ``health_only``: just /healthz, /readyz and /metrics (ingest and scheduler
    processes, so that operators can watch every process the same way)."""
    app = FastAPI(title="anxin", version="1", description=DESCRIPTION)
    app.state.context = context
    app.include_router(health.router)
    if health_only:
        return app
    app.include_router(auth.router)
    # Before the alerts router: /alerts/stream is not an /alerts/{alert_id}.
    app.include_router(alert_stream.router)
    for routes in (alerts, elders, devices, commands, telemetry, dead_letters, stats, visits):
        app.include_router(routes.router, responses={401: UNAUTHORIZED})
    for admin_routes in (users, audit):
        app.include_router(admin_routes.router, responses={401: UNAUTHORIZED})
    mount_console(app)
    complete(app)
    return app
