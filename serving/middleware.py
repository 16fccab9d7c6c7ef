"""Request-size limit, as pure ASGI middleware (cheap on the hot path).

:class:`BodyLimitMiddleware` refuses a body larger than ``max_bytes`` with 413 — at once
when ``Content-Length`` says so, else while it streams in (chunked uploads) — and only
then lets the application read it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import error_bytes

BODY_METHODS = {"POST", "PUT", "PATCH"}


async def send_error(send: Send, status: int, message: str, field: str | None = None) -> None:
    """Answer with the API's JSON error shape from inside ASGI middleware."""
    body = error_bytes(status, message, field)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimitMiddleware:
    """413 for request bodies over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await send_error(send, 413, self._message(declared))
            return
        body = await self._read_body(receive)
        if body is None:
            await send_error(send, 413, self._message(None))
            return
        await self.app(scope, _replay(body, receive), send)

    def _message(self, size: int | None) -> str:
        got = f" ({size} bytes)" if size is not None else ""
        return f"request body too large{got}: the limit is {self.max_bytes} bytes"

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it exceeds the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # client went away; let the app see an empty body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the buffered body over once, then defers to the server."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
