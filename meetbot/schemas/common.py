"""Base models and shared shapes of the API: camelCase aliases, UTC timestamps, errors, pagination."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

# The instants a date-time may name: within these years in UTC.
MIN_YEAR, MAX_YEAR = 2000, 9999
# The years the OpenAPI document allows a date-time to be written with: one inside each bound, so that whatever the
# offset, the instant falls within MIN_YEAR..MAX_YEAR in UTC (no pattern can follow an offset across a year's end).
_YEAR = r"(?:200[1-9]|20[1-9][0-9]|2[1-9][0-9]{2}|[3-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
DATETIME_PATTERN = (
    rf"^{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,9})?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
# ISO 8601 / RFC 3339 extended form: date, T (or space), time, optional fraction, optional offset.
# The offset is optional here only so that a naive time gets pydantic's own "timezone required" error.
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?$")


def format_utc(value: datetime) -> str:
    """ISO-8601 UTC with a trailing Z, millisecond precision."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_8601_only(value: Any) -> Any:
    """JSON carries date-times as ISO 8601 strings: no numbers (epoch seconds), no other string shapes."""
    if isinstance(value, datetime):  # Python callers, and stored rows read back
        return value
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        raise PydanticCustomError(
            "datetime_parsing", "value is not a valid ISO 8601 date-time string (e.g. 2030-01-01T10:00:00Z)"
        )
    return value


def _in_utc_range(value: datetime) -> datetime:
    """The same instant in UTC, which must fall within the years MIN_YEAR..MAX_YEAR."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise ValueError(f"date-time must be between the years {MIN_YEAR} and {MAX_YEAR} in UTC")
    return utc


def _whole_number(value: Any) -> Any:
    """JSON has one number type: 5000.0 is the integer 5000 (as JSON Schema's "integer" says), 5000.5 is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


UTCTimestamp = Annotated[datetime, PlainSerializer(format_utc, return_type=str, when_used="json")]
InputTimestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_8601_only),
    AfterValidator(_in_utc_range),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN}, mode="validation"),
]
# An integer in a JSON body: a number without fraction (5000 or 5000.0); never a string or a boolean.
JsonInt = Annotated[StrictInt, BeforeValidator(_whole_number)]
# The same or null. (Not `JsonInt | None`: pydantic would then write a field's bounds as "ge"/"le" in the document.)
OptionalJsonInt = Annotated[StrictInt | None, BeforeValidator(_whole_number)]


class ApiModel(BaseModel):
    """Request/response models: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        from_attributes=True,
    )


class ResponseModel(ApiModel):
    """Responses: camelCase too, built from rows that carry more columns than they show."""

    model_config = ConfigDict(extra="ignore")


class ErrorMessage(BaseModel):
    detail: str = Field(examples=["Bot not found"])


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    detail: list[ValidationErrorItem]


class PageQuery(BaseModel):
    """Query parameters of a list; unknown parameters are rejected like unknown body fields."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(20, ge=1, le=100)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


class Page(ResponseModel):
    """The seed's pagination envelope; subclasses add the list under the resource's plural."""

    total: int
    page: int
    page_size: int = Field(alias="page_size")


def page_envelope(key: str, model: type[BaseModel], rows: Sequence[Any], total: int, query: PageQuery) -> bytes:
    """The seed's list response, as JSON: rows validated through model under the resource's plural key.

    The page is validated and serialized by one TypeAdapter in pydantic-core, straight to JSON bytes: a model per
    row, dumped to Python and encoded again, cost twice as much (bench/api.py's listing of 20 bots).
    """
    adapter = _list_adapter(model)
    items = adapter.dump_json(adapter.validate_python(rows, from_attributes=True), by_alias=True)
    tail = f',"total":{int(total)},"page":{int(query.page)},"page_size":{int(query.page_size)}}}'
    return b'{"' + key.encode() + b'":' + items + tail.encode()


def resource_json(model: type[BaseModel], data: Any) -> bytes:
    """One resource as the API sends it: data validated through model and serialized in pydantic-core, straight to
    JSON bytes (what model_validate, model_dump and orjson give, for less)."""
    adapter = _adapter(model)
    return adapter.dump_json(adapter.validate_python(data), by_alias=True)


@functools.cache
def _adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    return TypeAdapter(model)


@functools.cache
def _list_adapter(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


# pydantic v2 error types → the seed's (pydantic v1 style) types and messages.
_SEED_TYPES: dict[str, tuple[str, str | None]] = {
    "missing": ("value_error.missing", "field required"),
    "extra_forbidden": ("value_error.extra", "extra fields not permitted"),
    "int_parsing": ("type_error.integer", "value is not a valid integer"),
    "int_type": ("type_error.integer", "value is not a valid integer"),
    "int_from_float": ("type_error.integer", "value is not a valid integer"),
    "string_type": ("type_error.str", "str type expected"),
    "bool_type": ("type_error.bool", "value could not be parsed to a boolean"),
    "bool_parsing": ("type_error.bool", "value could not be parsed to a boolean"),
    "model_type": ("type_error.dict", "value is not a valid dict"),
    "dict_type": ("type_error.dict", "value is not a valid dict"),
    "list_type": ("type_error.list", "value is not a valid list"),
    "literal_error": ("value_error.const", None),
    "enum": ("type_error.enum", None),
    "string_too_short": ("value_error.any_str.min_length", None),
    "string_too_long": ("value_error.any_str.max_length", None),
    "greater_than_equal": ("value_error.number.not_ge", None),
    "less_than_equal": ("value_error.number.not_le", None),
    "greater_than": ("value_error.number.not_gt", None),
    "less_than": ("value_error.number.not_lt", None),
    "value_error": ("value_error", None),
    "url_parsing": ("value_error.url", None),
    "url_scheme": ("value_error.url.scheme", None),
    "datetime_parsing": ("type_error.datetime", None),
    "datetime_from_date_parsing": ("type_error.datetime", None),
    "timezone_aware": ("value_error.datetime.timezone", None),
    "string_pattern_mismatch": ("value_error.str.regex", None),
    "too_long": ("value_error.list.max_items", None),
    "json_invalid": ("value_error.jsondecode", None),
}


def seed_validation_errors(errors: Sequence[Any], location: str) -> list[dict[str, Any]]:
    """pydantic errors → [{"loc": [location, ...], "msg": ..., "type": ...}] as the seed shows."""
    items = []
    for error in errors:
        kind = error.get("type", "value_error")
        seed_type, seed_msg = _SEED_TYPES.get(kind, (f"value_error.{kind}", None))
        msg = seed_msg or str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        loc = [location, *[part for part in error.get("loc", ()) if part != "__root__"]]
        items.append({"loc": loc, "msg": msg, "type": seed_type})
    return items
