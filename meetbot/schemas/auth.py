"""Request and response models of /auth, /users and /api-keys."""

from __future__ import annotations

import re

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import EmailStr, Field

from meetbot.schemas.analytics import DailyRequests, EndpointCount
from meetbot.schemas.common import ApiModel, Page, PageQuery, ResponseModel, UTCTimestamp


def _any_case(word: str) -> str:
    return "".join(f"[{char.upper()}{char}]" if char.isalpha() else re.escape(char) for char in word)


# Addresses under special-use names (RFC 6761: .test, .local, .invalid, ...) cannot receive mail and are refused
# (email-validator); the document says so, so a client generating from it gets no surprise 422.
_NOT_SPECIAL_USE = r"^(?!.*\.(?:" + "|".join(map(_any_case, SPECIAL_USE_DOMAIN_NAMES)) + r")\.?$)"
EMAIL_FIELD = {"max_length": 320, "json_schema_extra": {"pattern": _NOT_SPECIAL_USE}}


class RegisterRequest(ApiModel):
    email: EmailStr = Field(**EMAIL_FIELD)
    password: str = Field(min_length=8, max_length=256)
    name: str = Field(min_length=1, max_length=200)


class LoginRequest(ApiModel):
    email: EmailStr = Field(**EMAIL_FIELD)
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(ApiModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(ApiModel):
    refresh_token: str | None = Field(None, max_length=512)


class TokenPair(ResponseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class User(ResponseModel):
    id: int
    email: str
    name: str
    created_at: UTCTimestamp
    updated_at: UTCTimestamp


class UserUpdate(ApiModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    email: EmailStr | None = Field(None, **EMAIL_FIELD)
    password: str | None = Field(None, min_length=8, max_length=256)
    current_password: str | None = Field(None, max_length=256)


class ApiKeyCreate(ApiModel):
    name: str = Field("default", min_length=1, max_length=200)


class ApiKey(ResponseModel):
    id: int
    name: str
    prefix: str
    created_at: UTCTimestamp
    last_used_at: UTCTimestamp | None
    revoked_at: UTCTimestamp | None


class ApiKeyCreated(ApiKey):
    key: str = Field(description="The full key. Shown once; store it now.")


class ApiKeyList(Page):
    api_keys: list[ApiKey]


class ApiKeyUsage(ResponseModel):
    api_key_id: int
    total_requests: int
    requests_last_24h: int = Field(alias="requestsLast24h")
    last_used_at: UTCTimestamp | None
    by_status: dict[str, int]
    daily: list[DailyRequests] = Field(description="requests per UTC day over the last 30 days, oldest first")
    top_endpoints: list[EndpointCount] = Field(description="the 10 most requested endpoints over the last 30 days")


class ApiLog(ResponseModel):
    id: int
    method: str
    path: str
    status_code: int
    duration_ms: float
    api_key_id: int | None
    created_at: UTCTimestamp


class ApiLogList(Page):
    logs: list[ApiLog]


class ApiLogQuery(PageQuery):
    pass


class Usage(ResponseModel):
    bots_total: int
    bots_by_status: dict[str, int]
    api_requests_total: int
    api_requests_last_24h: int = Field(alias="apiRequestsLast24h")
    api_keys_active: int
    seconds_in_call: float
    recorded_minutes: float = Field(description="minutes of the recordings the user has stored now")
    storage_bytes: int = Field(description="bytes those recordings take in the store")
    transcribed_minutes: float = Field(description="minutes of audio in the user's finished transcripts")
