"""The HTTP face of the server: routes, error mapping, request ids.

Routes:

| route                         | what                                          |
|-------------------------------|-----------------------------------------------|
| `POST /api/predict/{service}` | TorchEasyRec Processor protobuf (PBRequest)   |
| `POST /v1/rank`               | the JSON API (`protocol_json`)                |
| `GET /health`                 | liveness: 200 while the process serves        |
| `GET /ready`                  | readiness: 200 once `ranker.ready`, else 503  |
| `GET /openapi.json`           | the JSON API's OpenAPI 3 document             |

Decoding, ranking and encoding run together on the bounded pool of
`AdmissionGate`; the event loop only moves bytes.
"""

import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recship.errors import ServingError
from recship.serving.admission import AdmissionGate
from recship.serving.openapi import build_openapi_schema
from recship.serving.protocol_json import (
    MAX_REQUEST_ID_CHARS,
    decode_json_request,
    encode_json_response,
)
from recship.serving.protocol_pb import decode_pb_request, encode_pb_response
from recship.serving.request import RankRequest, RankResponse

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"


class Ranker(Protocol):
    """What the server needs from a model: readiness and a blocking `rank`."""

    ready: bool

    def rank(self, request: RankRequest) -> RankResponse:
        """Scores the request's items; called from a pool thread."""
        ...


def build_app(
    ranker: Ranker,
    *,
    service_name: str = "recship",
    max_body_bytes: int = 8 << 20,
    worker_threads: int = 4,
    max_queue_size: int = 64,
) -> Starlette:
    """Builds the server's ASGI app around a ranker.

    Args:
        ranker: scores requests; `rank` is called from pool threads, so it
            must be safe to call from several threads at once.
        service_name: the `{service}` that `/api/predict/{service}` answers.
        max_body_bytes: largest request body; larger ones get 413.
        worker_threads: requests ranked at once.
        max_queue_size: admitted requests that may wait for a thread; beyond
            that, 503 at once.

    Returns:
        The app. `app.state.admission` is its `AdmissionGate`, whose threads
        stop when the app's lifespan ends.
    """
    gate = AdmissionGate(worker_threads, max_queue_size)
    endpoints = _Endpoints(ranker, service_name, max_body_bytes, gate)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logger.info(
            "serving %r: %d worker threads, queue of %d",
            service_name,
            worker_threads,
            max_queue_size,
        )
        yield
        gate.shutdown()

    routes = [
        Route("/api/predict/{service}", endpoints.predict_pb, methods=["POST"]),
        Route("/v1/rank", endpoints.rank_json, methods=["POST"]),
        Route("/health", endpoints.health, methods=["GET"]),
        Route("/ready", endpoints.ready, methods=["GET"]),
        Route("/openapi.json", endpoints.openapi, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestIdMiddleware)],
        lifespan=lifespan,
    )
    app.state.admission = gate
    return app


class _Endpoints:
    """The route handlers, sharing one ranker, gate and set of limits."""

    def __init__(
        self,
        ranker: Ranker,
        service_name: str,
        max_body_bytes: int,
        gate: AdmissionGate,
    ) -> None:
        self.ranker = ranker
        self.service_name = service_name
        self.max_body_bytes = max_body_bytes
        self.gate = gate
        self.openapi_body = json.dumps(build_openapi_schema(service_name)).encode()

    async def predict_pb(self, request: Request) -> Response:
        """`POST /api/predict/{service}`: PBRequest in, PBResponse out.

        Errors answer with the message as plain text, which the eas-prediction
        SDK puts into its `PredictException`.
        """
        request_id = request.state.request_id
        service = request.path_params["service"]
        if service != self.service_name:
            return PlainTextResponse(
                f"service {service!r} not found; this server serves "
                f"{self.service_name!r} at /api/predict/{self.service_name}",
                status_code=404,
            )

        try:
            body = await _read_body(request, self.max_body_bytes)
            payload = await self.gate.run(self._score_pb, body, request_id)
        except Exception as err:
            status, message = _describe_failure(err, request_id)
            return PlainTextResponse(message, status_code=status)
        return Response(payload, media_type="application/octet-stream")

    async def rank_json(self, request: Request) -> Response:
        """`POST /v1/rank`: the JSON API."""
        request_id = request.state.request_id
        try:
            body = await _read_body(request, self.max_body_bytes)
            payload, request_id = await self.gate.run(
                self._score_json, body, request_id
            )
        except Exception as err:
            status, message = _describe_failure(err, request_id)
            return JSONResponse(
                {"error": message, "request_id": request_id}, status_code=status
            )
        return Response(
            payload,
            media_type="application/json",
            headers={REQUEST_ID_HEADER: request_id},
        )

    async def health(self, request: Request) -> Response:
        """`GET /health`: 200 while the process serves requests."""
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        """`GET /ready`: 200 once the ranker is ready, 503 before."""
        is_ready = bool(getattr(self.ranker, "ready", False))
        return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)

    async def openapi(self, request: Request) -> Response:
        """`GET /openapi.json`: the JSON API's schema."""
        return Response(self.openapi_body, media_type="application/json")

    def _score_pb(self, body: bytes, request_id: str) -> bytes:
        """Pool thread: decode a PBRequest, rank it, encode the PBResponse."""
        rank_request = decode_pb_request(body)
        rank_request.request_id = request_id
        return encode_pb_response(self.ranker.rank(rank_request))

    def _score_json(self, body: bytes, request_id: str) -> tuple[bytes, str]:
        """Pool thread: decode JSON, rank it, encode JSON; the request's own
        id, when it sends one, replaces the header's."""
        rank_request = decode_json_request(body)
        if rank_request.request_id is None:
            rank_request.request_id = request_id
        response = self.ranker.rank(rank_request)
        return encode_json_response(response, rank_request.request_id), (
            rank_request.request_id
        )


class RequestIdMiddleware:
    """Gives every request an id and every response an `X-Request-Id` header.

    The id is the caller's `X-Request-Id` when it is sane, else a new one; it
    is in `request.state.request_id` for handlers and logs. A handler may set
    the header itself (the JSON API echoes the body's `request_id`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if REQUEST_ID_HEADER not in headers:
                    headers.append(REQUEST_ID_HEADER, request_id)
            await send(message)

        await self.app(scope, receive, send_with_id)


def _incoming_request_id(scope: Scope) -> str | None:
    """The caller's `X-Request-Id`, if short and printable ASCII; any other
    is replaced by one of ours rather than copied into logs and headers."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if 0 < len(value) <= MAX_REQUEST_ID_CHARS and all(
                33 <= byte <= 126 for byte in value
            ):
                return value.decode("ascii")
            return None
    return None


async def _read_body(request: Request, limit: int) -> bytes:
    """Reads the body, refusing one over `limit` bytes before reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ServingError(_too_large_message(int(declared), limit), status=413)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServingError(_too_large_message(size, limit), status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large_message(size: int, limit: int) -> str:
    """Explains a 413."""
    return (
        f"request body of {size}+ bytes is over the limit of {limit} bytes; "
        "send fewer items per request"
    )


def _describe_failure(err: Exception, request_id: str) -> tuple[int, str]:
    """Maps an exception to an HTTP status and a short message, logging bugs.

    Expected failures (`ServingError` below 500, and 503 when overloaded)
    are the caller's business and are not logged: under load they would
    flood the log, and metrics count them. Anything else is a bug, logged
    with its traceback and answered 500.
    """
    if isinstance(err, ServingError) and (err.status < 500 or err.status == 503):
        return err.status, str(err)
    logger.error("request %s failed", request_id, exc_info=err)
    return 500, f"internal error while serving request {request_id}; see server log"
