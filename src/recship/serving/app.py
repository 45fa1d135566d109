"""The HTTP face of the server: routes, error mapping, request ids.

Routes:

| route                         | what                                          |
|-------------------------------|-----------------------------------------------|
| `POST /api/predict/{service}` | TorchEasyRec Processor protobuf (PBRequest)   |
| `POST /v1/rank`               | the JSON API (`protocol_json`)                |
| `GET /health`                 | liveness: 200 while the process serves        |
| `GET /ready`                  | readiness: 200 once `ranker.ready`, else 503  |
| `GET /openapi.json`           | the JSON API's OpenAPI 3 document             |
| `GET /metrics`                | Prometheus metrics (with `operations`)        |

Decoding, ranking and encoding run together on the bounded pool of
`AdmissionGate`; the event loop only moves bytes.
"""

import inspect
import json
import logging
import os
import time
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
from recship.serving.operations import Operations, RequestTrace
from recship.serving.protocol_json import (
    MAX_REQUEST_ID_CHARS,
    decode_json_request,
    encode_json_request,
    encode_json_response,
)
from recship.serving.protocol_pb import (
    decode_pb_request,
    encode_pb_request,
    encode_pb_response,
)
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
    operations: Operations | None = None,
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
        operations: signing, metrics, request logs and warm-up; readiness
            waits for its warm-up, and `/metrics` is served when it has
            metrics.

    Returns:
        The app. `app.state.admission` is its `AdmissionGate`, whose threads
        stop when the app's lifespan ends.
    """
    gate = AdmissionGate(worker_threads, max_queue_size)
    operations = operations or Operations()
    operations.queue_depth = lambda: gate.in_flight
    endpoints = _Endpoints(ranker, service_name, max_body_bytes, gate)
    endpoints.operations = operations
    operations.live_path = endpoints.serve_warmup

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logger.info(
            "serving %r: %d worker threads, queue of %d",
            service_name,
            worker_threads,
            max_queue_size,
        )
        operations.start()
        yield
        gate.shutdown()
        operations.close()

    routes = [
        Route("/api/predict/{service}", endpoints.predict_pb, methods=["POST"]),
        Route("/v1/rank", endpoints.rank_json, methods=["POST"]),
        Route("/health", endpoints.health, methods=["GET"]),
        Route("/ready", endpoints.ready, methods=["GET"]),
        Route("/openapi.json", endpoints.openapi, methods=["GET"]),
        Route("/metrics", endpoints.metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestIdMiddleware)],
        lifespan=lifespan,
    )
    app.state.admission = gate
    app.state.operations = operations
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
        self.operations = Operations()
        # Rankers that accept `timings` report their stages (features, fg,
        # model); others are timed as one `rank` stage.
        self.rank_takes_timings = "timings" in inspect.signature(ranker.rank).parameters

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

        trace = RequestTrace(request_id, "pb")
        body = b""
        try:
            body = await _read_body(request, self.max_body_bytes)
            self._authenticate(request, body)
            payload = await self.gate.run(self._score_pb, body, trace)
        except Exception as err:
            status, message = _describe_failure(err, request_id)
            self.operations.finish(trace, status, body, message)
            return PlainTextResponse(message, status_code=status)
        self.operations.finish(trace, 200, body)
        return Response(payload, media_type="application/octet-stream")

    async def rank_json(self, request: Request) -> Response:
        """`POST /v1/rank`: the JSON API."""
        request_id = request.state.request_id
        trace = RequestTrace(request_id, "json")
        body = b""
        try:
            body = await _read_body(request, self.max_body_bytes)
            self._authenticate(request, body)
            payload, request_id = await self.gate.run(self._score_json, body, trace)
        except Exception as err:
            status, message = _describe_failure(err, request_id)
            self.operations.finish(trace, status, body, message)
            return JSONResponse(
                {"error": message, "request_id": request_id}, status_code=status
            )
        self.operations.finish(trace, 200, body)
        return Response(
            payload,
            media_type="application/json",
            headers={REQUEST_ID_HEADER: request_id},
        )

    async def health(self, request: Request) -> Response:
        """`GET /health`: 200 while the process serves requests."""
        return JSONResponse({"status": "ok", "pid": os.getpid()})

    async def ready(self, request: Request) -> Response:
        """`GET /ready`: 200 once the ranker is ready, 503 before."""
        is_ready = bool(getattr(self.ranker, "ready", False))
        is_ready = is_ready and self.operations.warmed
        return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)

    async def openapi(self, request: Request) -> Response:
        """`GET /openapi.json`: the JSON API's schema."""
        return Response(self.openapi_body, media_type="application/json")

    async def metrics(self, request: Request) -> Response:
        """`GET /metrics`: Prometheus text exposition of this process."""
        if self.operations.metrics is None:
            return PlainTextResponse("metrics are not enabled", status_code=404)
        body, content_type = self.operations.metrics.render()
        return Response(body, headers={"Content-Type": content_type})

    def serve_warmup(self, rank_request: RankRequest) -> None:
        """Warm-up thread: `rank_request` as a JSON and as a PB body through
        the routes' own decode, rank and encode, on the admission pool's
        threads, so the first live request finds every path warm."""
        bodies = (
            (self._score_json, encode_json_request(rank_request), "json"),
            (self._score_pb, encode_pb_request(rank_request), "pb"),
        )
        for score, body, protocol in bodies:
            self.gate.run_blocking(score, body, RequestTrace("warmup", protocol))

    def _authenticate(self, request: Request, body: bytes) -> None:
        """Checks the request's signature when the service has a token."""
        self.operations.authenticate(
            request.method, request.url.path, request.headers, body
        )

    def _rank(self, rank_request: RankRequest, trace: RequestTrace) -> RankResponse:
        """Pool thread: ranks, recording the ranker's stages in `trace`."""
        trace.items = len(rank_request.item_ids)
        self.operations.begin()
        started = time.perf_counter()
        if self.rank_takes_timings:
            response = self.ranker.rank(rank_request, timings=trace.stages)
        else:
            response = self.ranker.rank(rank_request)
            trace.stages["rank"] = time.perf_counter() - started
        trace.model_version = response.model_version
        return response

    def _score_pb(self, body: bytes, trace: RequestTrace) -> bytes:
        """Pool thread: decode a PBRequest, rank it, encode the PBResponse."""
        started = time.perf_counter()
        rank_request = decode_pb_request(body)
        rank_request.request_id = trace.request_id
        trace.stages["parse"] = time.perf_counter() - started

        response = self._rank(rank_request, trace)

        started = time.perf_counter()
        payload = encode_pb_response(response)
        trace.stages["respond"] = time.perf_counter() - started
        return payload

    def _score_json(self, body: bytes, trace: RequestTrace) -> tuple[bytes, str]:
        """Pool thread: decode JSON, rank it, encode JSON; the request's own
        id, when it sends one, replaces the header's."""
        started = time.perf_counter()
        rank_request = decode_json_request(body)
        if rank_request.request_id is None:
            rank_request.request_id = trace.request_id
        trace.request_id = rank_request.request_id
        trace.stages["parse"] = time.perf_counter() - started

        response = self._rank(rank_request, trace)

        started = time.perf_counter()
        payload = encode_json_response(response, rank_request.request_id)
        trace.stages["respond"] = time.perf_counter() - started
        return payload, rank_request.request_id


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
