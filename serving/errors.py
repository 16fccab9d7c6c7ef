"""Every error the API returns is JSON: ``{"error": {"code", "message", "field"?}}``.

``code`` is a stable machine name (``unknown_series``, ``too_many_rows``...), ``message``
says what to fix, ``field`` names the offending request field (``rows[3].ds``) when there
is one. Validation errors list every problem under ``error.details``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the client can act on: HTTP status, code, message and the field at fault."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers


def error_body(
    code: str, message: str, field: str | None = None, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON document of one error response."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    if details:
        error["details"] = details
    return {"error": error}


def error_bytes(status: int, message: str, field: str | None = None) -> bytes:
    """Encoded error body, for the ASGI middleware that answers before FastAPI runs."""
    code = STATUS_CODES.get(status, "error")
    return json.dumps(error_body(code, message, field)).encode()


def field_path(loc: Sequence[str | int]) -> str:
    """``("body", "rows", 3, "ds")`` -> ``rows[3].ds`` (the request part is implied)."""
    parts = list(loc[1:]) if loc and loc[0] in {"body", "query", "path", "header"} else list(loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    body = error_body(exc.code, exc.message, exc.field)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"field": field_path(err.get("loc", ())), "message": err.get("msg", "invalid")}
        for err in exc.errors()
    ]
    first = details[0] if details else {"field": None, "message": "invalid request"}
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    body = error_body("validation_error", message, first["field"] or None, details)
    return JSONResponse(body, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = STATUS_CODES.get(exc.status_code, "error")
    body = error_body(code, str(exc.detail))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = error_body("internal_error", "the server failed to answer; see its log")
    return JSONResponse(body, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of failure to the one JSON error shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
