"""Property-based requests generated from our own OpenAPI document: no input gets a 500 or an off-schema answer."""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import schemathesis
from hypothesis import HealthCheck, settings

from api.app import create_app
from api.services import Services
from meetbot.db import migrate
from meetbot.db.engine import get_engine
from meetbot.domain import accounts
from tests.conftest import make_settings

_data = Path(tempfile.mkdtemp(prefix="meetbot-fuzz-"))
_db_url = f"sqlite:///{_data / 'fuzz.db'}"
migrate(_db_url)
_settings = make_settings(_data, _db_url, rate_limit_per_minute=1_000_000, rate_limit_per_hour=1_000_000)
with get_engine(_db_url).begin() as _conn:
    _user = accounts.create_user(_conn, "fuzz@example.com", "fuzzing-password", "Fuzz")
    _, API_KEY = accounts.create_api_key(_conn, _user.id, "fuzz")

app = create_app(_settings, Services.from_settings(_settings))
# The live event streams (SSE) never end by themselves: their inputs are checked in tests/test_events_stream.py.
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app).exclude(path_regex=r"events/stream$")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code < 500, response.text
    # Every check, positive data acceptance (ST202) included: the document says what the server accepts (NUL-free
    # strings, id maximums, no special-use email domains), so a schema-valid request is never refused as invalid.
    excluded = []
    sent = set(parse_qs(urlsplit(response.request.url).query, keep_blank_values=True))
    if set(case.query or {}) - sent:
        # The HTTP client drops parameters whose value is None or an empty list: the "unknown parameter"
        # schemathesis generated never reached the API, so there was nothing to reject.
        excluded.append(schemathesis.checks.negative_data_rejection)
    case.validate_response(response, excluded_checks=excluded)
