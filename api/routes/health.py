"""Liveness, readiness and metrics: for load balancers and Prometheus, no token needed."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Context

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(context: Context) -> JSONResponse:
    checks = {name: _safe(check) for name, check in context.readiness.items()}
    ready = all(ok for name, ok in checks.items() if name not in context.advisory_checks)
    degraded = sorted(name for name, ok in checks.items() if not ok and ready)
    body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
    if degraded:
        body["degraded"] = degraded
    return JSONResponse(
        body,
        status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus' text exposition format.",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        }
    },
)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _safe(check: object) -> bool:
    try:
        return bool(check()) if callable(check) else False
    except Exception:  # a failing check means "not ready", never a 500
        return False
