"""The OpenAPI 3.1 document, generated from the same pydantic models and endpoint records that serve requests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_snake
from pydantic.json_schema import models_json_schema

import meetbot
from api.routing import MAX_ID, Endpoint
from meetbot.schemas.common import ErrorMessage, ValidationErrorResponse

REF = "#/components/schemas/{model}"
_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing, invalid or revoked token",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict with the resource's state",
    413: "Request body too large",
    415: "The body is not JSON (Content-Type application/json or +json)",
    416: "Range not satisfiable (Content-Range: bytes */size)",
    429: "Rate limited (see Retry-After)",
    503: "A backing service is unavailable",
}
_RATE_HEADERS = {
    name: {"description": text, "schema": {"type": "integer"}}
    for name, text in (
        ("X-RateLimit-Limit", "Requests allowed in the current window"),
        ("X-RateLimit-Remaining", "Requests left in the current window"),
        ("X-RateLimit-Reset", "Epoch seconds when the window resets"),
    )
}
# Every response of a limited request carries the X-RateLimit-* headers; a 429 always carries all four.
_RETRY_AFTER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 1}}
_LIMITED_HEADERS = {
    name: {**header, "required": True} for name, header in {"Retry-After": _RETRY_AFTER, **_RATE_HEADERS}.items()
}
_AUTH_HEADERS = {
    "WWW-Authenticate": {
        "description": "The authentication scheme (RFC 6750), e.g. Bearer",
        "required": True,
        "schema": {"type": "string"},
    }
}


NO_NUL = "^[^\\u0000]*$"  # every string the API takes is refused with a NUL in it (input hardening)


def _refuse_nul(schema: Any, schemas: dict[str, Any], seen: set[str]) -> None:
    """Say in the document what the server enforces on input: no string may carry NUL (a string without a
    pattern of its own gets one). Follows $refs into the components, each once; error responses, which may echo
    what the client sent, are not inputs and keep no such pattern."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in seen and name in schemas:
                seen.add(name)
                _refuse_nul(schemas[name], schemas, seen)
        if schema.get("type") == "string" and not {"pattern", "enum", "const"} & schema.keys():
            schema["pattern"] = NO_NUL
        for value in schema.values():
            _refuse_nul(value, schemas, seen)
    elif isinstance(schema, list):
        for item in schema:
            _refuse_nul(item, schemas, seen)


def _query_parameters(model: type[BaseModel], schema: dict[str, Any]) -> list[dict[str, Any]]:
    params = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return params


def _singular(word: str) -> str:
    """bots → bot, deliveries → delivery, api-keys → api_key: the name a resource's id parameters carry."""
    word = word.replace("-", "_")
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") else word


def _addressed(path: str) -> list[tuple[str, str, str]]:
    """(parameter, resource, key) per path parameter: /bots/{id} → (id, bot, id), /recordings/{bot_id} →
    (bot_id, bot, id), /share/{token} → (token, share, token)."""
    found, previous = [], ""
    for part in path.strip("/").split("/"):
        if not part.startswith("{"):
            previous = part
            continue
        name = part[1:-1].split(":")[0]
        if name == "id":
            found.append((name, _singular(previous), "id"))
        elif name.endswith("_id"):
            found.append((name, name[: -len("_id")], "id"))
        else:
            found.append((name, _singular(previous), name))
    return found


def _link_sources(endpoint: Endpoint, body: dict[str, Any], schemas: dict[str, Any]) -> dict[tuple[str, str], str]:
    """What a successful answer of endpoint tells about resources: (resource, key) → a runtime expression.

    The ids of its own path (as sent); the resource it created (a 201 at a collection: its fields) or acted on (a
    path ending in /{id}, as the body shows it); fields holding an object with an id (WebhookTest.delivery).
    A nullable reference to another resource (Webhook.botId) is no source: a link must always resolve."""
    sources = {(resource, key): f"$request.path.{name}" for name, resource, key in _addressed(endpoint.path)}
    literal = [part for part in endpoint.path.strip("/").split("/") if not part.startswith("{")]
    own: str | None = None
    if endpoint.status == 201 and literal:
        own = _singular(literal[-1])
    elif endpoint.path_params and endpoint.path_params[-1] == "id" and "id" in body:
        own = _addressed(endpoint.path)[-1][1]
    for prop, schema in body.items():
        name = to_snake(prop)
        if own is not None:
            sources[(own, name)] = f"$response.body#/{prop}"
        target = _properties(schema, schemas)
        if "id" in target:
            sources[(_singular(name), "id")] = f"$response.body#/{prop}/id"
    return sources


def _properties(schema: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """The properties of an object schema, through a $ref to the components."""
    if not isinstance(schema, dict):
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        schema = schemas.get(ref.rsplit("/", 1)[1], {})
    properties = schema.get("properties", {})
    return properties if isinstance(properties, dict) else {}


def _add_links(endpoints: list[Endpoint], paths: dict[str, dict[str, Any]], schemas: dict[str, Any]) -> None:
    """OpenAPI links, inferred from the paths: from each operation that creates or changes a resource to every
    operation that addresses it by id, so a stateful client (schemathesis) can follow POST /bots with GET, PATCH,
    deploy or DELETE /bots/{id}, GET /recordings/{bot_id}, and so on."""
    consumers = [e for e in endpoints if e.include_in_schema and e.path_params]
    for endpoint in endpoints:
        if not endpoint.include_in_schema or endpoint.method not in ("POST", "PATCH", "PUT"):
            continue
        success = paths[endpoint.path][endpoint.method.lower()]["responses"][str(endpoint.status)]
        content = success.get("content", {}).get("application/json")
        if content is None:
            continue
        sources = _link_sources(endpoint, _properties(content.get("schema"), schemas), schemas)
        links: dict[str, Any] = {}
        for consumer in consumers:
            if consumer is endpoint:
                continue
            parameters = {name: sources.get((resource, key)) for name, resource, key in _addressed(consumer.path)}
            values = list(parameters.values())
            if None in values or not any(str(value).startswith("$response.") for value in values):
                continue
            operation_id = paths[consumer.path][consumer.method.lower()]["operationId"]
            links[operation_id] = {"operationId": operation_id, "parameters": parameters}
        if links:
            success["links"] = links


def build_openapi(endpoints: list[Endpoint], server_url: str = "/api/v1") -> dict[str, Any]:
    models: set[tuple[type[BaseModel], str]] = {
        (ErrorMessage, "serialization"),
        (ValidationErrorResponse, "serialization"),
    }
    for endpoint in endpoints:
        if endpoint.body:
            models.add((endpoint.body, "validation"))
        if endpoint.response:
            models.add((endpoint.response, "serialization"))
    refs, defs = models_json_schema(
        sorted(models, key=lambda m: (m[0].__name__, m[1])), by_alias=True, ref_template=REF
    )
    schemas = defs.get("$defs", {})
    inputs: set[str] = set()
    for (_model, mode), ref in refs.items():
        if mode == "validation":
            _refuse_nul(ref, schemas, inputs)

    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        if not endpoint.include_in_schema:
            continue
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "tags": [endpoint.tag],
            "operationId": endpoint.handler.__name__ + "_" + endpoint.method.lower(),
            "parameters": [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": (
                        {"type": "string", "pattern": NO_NUL}
                        if name in endpoint.text_params
                        else {"type": "integer", "minimum": 1, "maximum": MAX_ID}
                    ),
                }
                for name in endpoint.path_params
            ],
            "responses": {},
        }
        if endpoint.query:
            query_schema = endpoint.query.model_json_schema(by_alias=True, ref_template=REF)
            schemas.update(query_schema.pop("$defs", {}))
            _refuse_nul(query_schema, schemas, inputs)
            operation["parameters"] += _query_parameters(endpoint.query, query_schema)
        if endpoint.body:
            operation["requestBody"] = {
                # An empty body means {}: it is only missing when the model has required fields.
                "required": any(field.is_required() for field in endpoint.body.model_fields.values()),
                "content": {"application/json": {"schema": refs[(endpoint.body, "validation")]}},
            }
        success: dict[str, Any] = {"description": "Success"}
        if endpoint.response:
            success["content"] = {endpoint.response_media: {"schema": refs[(endpoint.response, "serialization")]}}
        elif endpoint.status == 200:
            success["content"] = {endpoint.response_media: {}}
        # Every request is rate limited: per key or user once authenticated, else per client address.
        success["headers"] = _RATE_HEADERS
        if endpoint.auth:
            operation["security"] = [{"bearer": []}]
        operation["responses"][str(endpoint.status)] = success
        # 503: any operation may meet a database or Redis outage (api/errors.py), answered with Retry-After.
        codes = set(endpoint.errors) | {429, 503} | ({401} if endpoint.auth else set())
        if endpoint.body or endpoint.query or endpoint.path_params:
            codes |= {422}
        if endpoint.body:
            codes |= {400, 413, 415}
        for code in sorted(codes):
            model = ValidationErrorResponse if code == 422 else ErrorMessage
            description = "Validation error" if code == 422 else _ERROR_TEXT.get(code, "Error")
            response: dict[str, Any] = {
                "description": description,
                "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}},
            }
            if code in (401, 429):
                response["headers"] = _AUTH_HEADERS if code == 401 else _LIMITED_HEADERS
            operation["responses"][str(code)] = response
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    _add_links(endpoints, paths, schemas)

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MeetBot API",
            "version": meetbot.__version__,
            "description": "Send bots to Google Meet, Zoom and Teams calls; get recordings, transcripts and summaries.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A JWT access token from /auth/login, or an API key (mb_…)",
                }
            },
        },
    }
