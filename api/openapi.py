"""What OpenAPI says beyond what the routes declare one by one: statuses every operation of a
kind can answer, and links between operations (a client, or a fuzzer's stateful phase, follows
an id from a list or a creation to the operations on that row).

Also the ``Allow`` header of a 405: Starlette names the methods of the first route whose path
matched, not all of the path's; here it names every method the path has.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.problems import Problem

UNREADABLE_BODY = {
    "description": "The body could not be read (not JSON, or not the form the operation takes).",
    "content": {
        "application/json": {
            "schema": {"$ref": "#/components/schemas/Problem"},
            "example": {"detail": "There was an error parsing the body"},
        }
    },
}

# (method, path) of a list or a creation → {link name: ((method, path), parameter, pointer)}.
_ALERT_ACTIONS = ("claim", "release", "acknowledge", "notes", "escalate", "resolve")


def _alert_links(pointer: str) -> dict[str, tuple[tuple[str, str], str, str]]:
    links = {"detail": (("get", "/api/v1/alerts/{alert_id}"), "alert_id", pointer)}
    for action in _ALERT_ACTIONS:
        links[action] = (("post", f"/api/v1/alerts/{{alert_id}}/{action}"), "alert_id", pointer)
    return links


def _elder_links(pointer: str) -> dict[str, tuple[tuple[str, str], str, str]]:
    return {
        "read": (("get", "/api/v1/elders/{elder_id}"), "elder_id", pointer),
        "update": (("patch", "/api/v1/elders/{elder_id}"), "elder_id", pointer),
    }


def _device_links(pointer: str) -> dict[str, tuple[tuple[str, str], str, str]]:
    return {
        "read": (("get", "/api/v1/devices/{device_id}"), "device_id", pointer),
        "update": (("patch", "/api/v1/devices/{device_id}"), "device_id", pointer),
        "telemetry": (("get", "/api/v1/devices/{device_id}/telemetry"), "device_id", pointer),
        "command": (("post", "/api/v1/devices/{device_id}/commands"), "device_id", pointer),
    }


LINKS: dict[tuple[str, str, str], dict[str, tuple[tuple[str, str], str, str]]] = {
    ("get", "/api/v1/alerts", "200"): _alert_links("$response.body#/items/0/id"),
    ("get", "/api/v1/alerts/{alert_id}", "200"): _alert_links("$response.body#/id"),
    ("get", "/api/v1/elders", "200"): _elder_links("$response.body#/items/0/id"),
    ("post", "/api/v1/elders", "201"): _elder_links("$response.body#/id"),
    ("get", "/api/v1/devices", "200"): _device_links("$response.body#/items/0/id"),
    ("post", "/api/v1/devices", "201"): _device_links("$response.body#/id"),
}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI, completed (cached on the app as FastAPI does)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Problem", Problem.model_json_schema())
    # A 422 is pydantic's list of errors, or the API's own sentence ("name cannot be null").
    components["Unprocessable"] = {
        "title": "Unprocessable",
        "type": "object",
        "properties": {
            "detail": {
                "title": "Detail",
                "anyOf": [
                    {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
                    {"type": "string"},
                ],
            }
        },
    }
    # The models a device may have: this installation's catalogue (with its overrides).
    catalogue = getattr(getattr(app.state, "context", None), "catalogue", None)
    for name in ("DeviceIn", "DevicePatch"):
        model = components.get(name, {}).get("properties", {}).get("model")
        if catalogue and model is not None:
            model["enum"] = sorted(catalogue)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("400", UNREADABLE_BODY)
            if "422" in responses:
                content = responses["422"].setdefault("content", {})
                content.setdefault("application/json", {})["schema"] = {
                    "$ref": "#/components/schemas/Unprocessable"
                }
            for (link_method, link_path, status), links in LINKS.items():
                if (link_method, link_path) != (method, path) or status not in responses:
                    continue
                responses[status]["links"] = {
                    name: {
                        "operationId": schema["paths"][target[1]][target[0]]["operationId"],
                        "parameters": {parameter: pointer},
                    }
                    for name, (target, parameter, pointer) in links.items()
                }
    app.openapi_schema = schema
    return schema


def _methods_by_path(app: FastAPI) -> list[tuple[re.Pattern[str], str]]:
    """Each documented path as a pattern, with its methods as ``Allow`` names them."""
    found = []
    for path, operations in openapi_document(app).get("paths", {}).items():
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path))
        methods = sorted(m.upper() for m in operations if m in _HTTP_METHODS)
        found.append((re.compile(f"^{pattern}$"), ", ".join(methods)))
    return found


_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


async def _with_allow(request: Request, exc: Exception) -> Response:
    """A 405 names every method of its path in ``Allow`` (RFC 9110 §15.5.6)."""
    if isinstance(exc, StarletteHTTPException) and exc.status_code == 405:
        app = request.app
        if not hasattr(app.state, "allow"):
            app.state.allow = _methods_by_path(app)
        for pattern, methods in app.state.allow:
            if pattern.match(request.url.path):
                exc = StarletteHTTPException(405, exc.detail, {"Allow": methods})
                break
    return await http_exception_handler(request, exc)  # type: ignore[arg-type]


def complete(app: FastAPI) -> None:
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    app.add_exception_handler(StarletteHTTPException, _with_allow)
