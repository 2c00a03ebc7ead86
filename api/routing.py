"""Declared endpoints: one record per route drives its middleware stack, input parsing and the OpenAPI document."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api.middleware.authentication import AuthenticationMiddleware
from api.middleware.errors import ErrorMappingMiddleware
from api.middleware.rate_limit import RateLimitMiddleware
from api.middleware.request_log import RequestLogMiddleware
from api.middleware.scope import principal
from api.services import Services
from meetbot.domain.accounts import Principal
from meetbot.errors import BadRequest, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType, ValidationFailed
from meetbot.json_codec import read_json
from meetbot.schemas.common import seed_validation_errors

log = logging.getLogger("meetbot.api")
MAX_ID = 2**63 - 1  # larger ids are not ids at all: 422
MAX_ROW_ID = 2**31 - 1  # the id columns are 32-bit: a larger id names no row, so it is simply not found
NUL_ERROR = {"msg": "string contains a NUL character (\\u0000)", "type": "value_error.str.nul"}


@dataclass
class Context:
    """Handed to every handler: the services and (for authenticated routes) the caller."""

    services: Services
    request: Request
    principal_or_none: Principal | None = None

    @property
    def principal(self) -> Principal:
        if self.principal_or_none is None:
            raise Unauthorized()
        return self.principal_or_none

    @property
    def user_id(self) -> int:
        return self.principal.user_id

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        with self.services.transaction() as conn:
            yield conn


Handler = Callable[..., Any]


@dataclass
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool = True
    errors: tuple[int, ...] = ()
    response_media: str = "application/json"
    include_in_schema: bool = True
    not_found: str = "Not found"  # the detail of this resource's 404, also used for ids beyond MAX_ROW_ID
    text_params: tuple[str, ...] = ()  # path parameters that are strings (e.g. a share token), not row ids
    redact_path: bool = False  # log the route's template, not the path (which carries a secret)
    reads_request_log: bool = False  # the buffered request log is written first, so callers see their requests
    cached: bool = False  # a GET of the caller's bots, answered from the page cache (api/page_cache.py) when fresh
    path_params: tuple[str, ...] = field(init=False)
    runs_on_loop: bool = field(init=False)  # an async handler: awaited on the event loop, not run in a thread

    def __post_init__(self) -> None:
        self.path_params = tuple(part[1:-1].split(":")[0] for part in self.path.split("/") if part.startswith("{"))
        self.runs_on_loop = inspect.iscoroutinefunction(self.handler)
        if self.runs_on_loop and self.reads_request_log:
            raise ValueError(f"{self.path}: a handler that reads the request log flushes it first, in a thread")


class Router:
    def __init__(self, not_found: str = "Not found") -> None:
        self.endpoints: list[Endpoint] = []
        self.not_found = not_found

    def route(self, method: str, path: str, summary: str, tag: str, **options: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            options.setdefault("not_found", self.not_found)
            self.endpoints.append(Endpoint(method, path, handler, summary, tag, **options))
            return handler

        return register


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Invalid Content-Length header")
        if int(declared) > limit:
            raise PayloadTooLarge(f"Request body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _validate(model: type[BaseModel], data: Any, location: str, context: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ValidationFailed(seed_validation_errors(exc.errors(include_url=False), location)) from exc


def _reject_nul(data: Any, location: str) -> None:
    """PostgreSQL cannot store U+0000 in text: refuse it in any key or value, at any depth (no recursion)."""
    errors = []
    stack: list[tuple[list[str | int], Any]] = [([location], data)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                errors.append({"loc": loc, **NUL_ERROR})
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                if "\x00" in key:
                    errors.append({"loc": [*loc, key], **NUL_ERROR})
                else:
                    stack.append(([*loc, key], item))
        elif isinstance(value, list):
            stack.extend(([*loc, index], item) for index, item in reversed(list(enumerate(value))))
    if errors:
        raise ValidationFailed(errors)


def _path_ids(endpoint: Endpoint, request: Request) -> tuple[dict[str, int], bool]:
    """The path's ids, and whether one of them is too large to name a row (answered 404 once inputs are valid)."""
    values: dict[str, int] = {}
    errors = []
    for name in endpoint.path_params:
        if name in endpoint.text_params:
            continue
        raw = request.path_params.get(name, "")
        # isascii: "²".isdigit() is true; the length bound keeps int() away from huge digit strings.
        if raw.isascii() and raw.isdigit() and len(raw) <= 19 and 0 < int(raw) <= MAX_ID:
            values[name] = int(raw)
        else:
            errors.append({"loc": ["path", name], "msg": "value is not a valid id", "type": "type_error.integer"})
    if errors:
        raise ValidationFailed(errors)
    return values, any(value > MAX_ROW_ID for value in values.values())


def _is_json_media_type(content_type: str) -> bool:
    """application/json or a structured-syntax +json type (RFC 6839), parameters such as charset aside."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _parse_inputs(endpoint: Endpoint, request: Request, services: Services, body: bytes | None) -> dict[str, Any]:
    ids, beyond_rows = _path_ids(endpoint, request)
    kwargs: dict[str, Any] = dict(ids)
    kwargs.update({name: request.path_params.get(name, "") for name in endpoint.text_params})
    context = {"allow_simulator": services.settings.allow_simulator}
    if endpoint.query is not None:
        params = dict(request.query_params)
        _reject_nul(params, "query")
        kwargs["query"] = _validate(endpoint.query, params, "query", context)
    if endpoint.body is not None:
        raw = body or b""
        if raw:  # no body at all means {}; anything sent must be JSON
            if not _is_json_media_type(request.headers.get("content-type", "")):
                raise UnsupportedMediaType()
            try:
                data = read_json(raw)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
                raise BadRequest("Malformed JSON body") from exc
        else:
            data = {}
        _reject_nul(data, "body")
        kwargs["body"] = _validate(endpoint.body, data, "body", context)
    if beyond_rows:
        raise NotFound(endpoint.not_found)
    return kwargs


class OrjsonResponse(JSONResponse):
    """The same compact UTF-8 JSON as Starlette's JSONResponse, serialized by orjson (several times faster)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def _render(endpoint: Endpoint, result: Any) -> Response:
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=endpoint.status)
    if isinstance(result, bytes):  # JSON already serialized (a page: meetbot.schemas.common.page_envelope)
        return Response(result, status_code=endpoint.status, media_type="application/json")
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json", by_alias=True)
    return OrjsonResponse(result, status_code=endpoint.status)


def _run_handler(endpoint: Endpoint, ctx: Context, kwargs: dict[str, Any]) -> Any:
    """The handler, in a worker thread (it may block on the database): one hop per request."""
    if endpoint.reads_request_log:
        try:
            ctx.services.request_log.flush()
        except Exception:  # the rows stay buffered for the next flush; the read goes on
            log.exception("could not write the API request log")
    return endpoint.handler(ctx, **kwargs)


class EndpointApp:
    """The innermost ASGI app of an endpoint: read and validate its inputs, run its handler, render the result.

    A cached endpoint's body comes from the page cache while fresh (same caller, path and query). Any other method's
    request by a caller counts as a change to the caller's bots, whatever its outcome (a failure may follow a commit).
    """

    def __init__(self, endpoint: Endpoint, services: Services) -> None:
        self.endpoint = endpoint
        self.services = services
        self.writes = endpoint.method not in ("GET", "HEAD")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = principal(scope)
        cache = self.services.page_cache
        if self.endpoint.cached and caller is not None and cache.enabled:
            key = (scope["path"], scope["query_string"])
            body = await cache.fetch(caller.user_id, key, lambda: self._body(scope, receive))
            await Response(body, media_type="application/json")(scope, receive, send)
            return
        try:
            response = await self._answer(scope, receive)
        finally:
            if self.writes and caller is not None:
                self.services.bots_changed(caller.user_id)
        await response(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive) -> Response:
        endpoint, services = self.endpoint, self.services
        request = Request(scope, receive)
        body = await _read_body(request, services.settings.max_body_bytes) if endpoint.body is not None else None
        kwargs = _parse_inputs(endpoint, request, services, body)
        ctx = Context(services=services, request=request, principal_or_none=principal(scope))
        if endpoint.runs_on_loop:  # it awaits its own blocking work (api/write_batches.py)
            result = await endpoint.handler(ctx, **kwargs)
        else:
            result = await run_in_threadpool(_run_handler, endpoint, ctx, kwargs)
        return _render(endpoint, result)

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        """A cached endpoint's JSON body (its only success is a 200; failures are raised)."""
        response = await self._answer(scope, receive)
        assert response.status_code == 200 and response.media_type == "application/json", self.endpoint.path
        return bytes(response.body)


def endpoint_stack(endpoint: Endpoint, services: Services) -> ASGIApp:
    """The request path of one endpoint, outermost first: request log, error mapping, authentication (endpoints
    that need it), rate limit, then the endpoint itself."""
    app: ASGIApp = EndpointApp(endpoint, services)
    app = RateLimitMiddleware(app, services)
    if endpoint.auth:
        app = AuthenticationMiddleware(app, services)
    app = ErrorMappingMiddleware(app)
    return RequestLogMiddleware(app, services, endpoint.path if endpoint.redact_path else None)


class _MethodDispatch:
    """One path's endpoints by method (HEAD is answered as GET)."""

    def __init__(self, stacks: dict[str, ASGIApp]) -> None:
        self.stacks = stacks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        await self.stacks[method](scope, receive, send)


def make_routes(endpoints: list[Endpoint], services: Services) -> list[Route]:
    """One Starlette route per path, so a 405 lists every method of the path in its Allow header."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for endpoint in endpoints:
        by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint
    routes = []
    for path, methods in by_path.items():
        stacks = {method: endpoint_stack(endpoint, services) for method, endpoint in methods.items()}
        routes.append(Route(path, _MethodDispatch(stacks), methods=list(methods)))
    return routes
