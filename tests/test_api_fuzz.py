"""Property-based requests generated from our own OpenAPI document, positive, negative and stateful (along the
document's links): no input gets a 500 or an off-schema answer, and no schema-valid request is refused."""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings

from api.app import create_app
from api.services import Services
from meetbot.db import migrate
from meetbot.db.engine import get_engine
from meetbot.db.tables import api_keys, metadata, users
from meetbot.domain import accounts
from meetbot.domain.meeting_urls import check_meeting_url
from meetbot.schemas.bots import MEETING_URL_PATTERNS
from meetbot.schemas.webhooks import URL_PATTERN
from tests.conftest import make_settings
from workers.process import WorkerProcess

SEED = 20_261_204  # fixed: every run (and CI) sends the same cases, so a failure reproduces
POSITIVE_AND_NEGATIVE_EXAMPLES = 60  # per operation, each mode, beside the coverage phase's boundary cases
STATEFUL_SCENARIOS, STATEFUL_STEPS = 150, 10
MIN_CASES = 2_000  # issue 11: at least this many requests in all

_data = Path(tempfile.mkdtemp(prefix="meetbot-fuzz-"))
_db_url = f"sqlite:///{_data / 'fuzz.db'}"
migrate(_db_url)
_settings = make_settings(
    _data,
    _db_url,
    rate_limit_per_minute=1_000_000,
    rate_limit_per_hour=1_000_000,
    webhook_allow_private=True,  # the webhook URLs are made to point at this machine (see _point_webhooks_here)
    webhook_timeout_seconds=1,  # POST /webhooks/{id}/test waits for the worker's attempt: at a closed port, quick
    webhook_claim_lease_seconds=2,
)
_engine = get_engine(_db_url)
_key: dict[str, Any] = {"user": None, "row": {}, "id": None, "value": ""}


def _fresh_account() -> None:
    """Empty tables and the fuzzing user, alone and as first created: each stateful scenario starts from the same
    state, so the same choices lead to the same answers (Hypothesis refuses a run where they do not, as flaky)."""
    with _engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table is not users:
                conn.execute(table.delete())
        if _key["user"] is None:
            conn.execute(users.delete())
            _key["user"] = accounts.create_user(conn, "fuzz@example.com", "fuzzing-password", "Fuzz").id
            _key["row"] = dict(conn.execute(sa.select(users).where(users.c.id == _key["user"])).one()._mapping)
        conn.execute(users.delete().where(users.c.id != _key["user"]))
        conn.execute(users.update().where(users.c.id == _key["user"]).values(**_key["row"]))
    _key["id"] = None


_fresh_account()


def _auth() -> dict[str, str]:
    """The Authorization header of a live key of the fuzzing user. The generated requests find the key (GET /api-keys
    lists it) and revoke it (DELETE /api-keys/{id}), as they should be able to; the next request then gets a new
    key, so no case is answered 401 for a key an earlier case revoked (the run would test nothing else)."""
    with _engine.begin() as conn:
        revoked = conn.execute(sa.select(api_keys.c.revoked_at).where(api_keys.c.id == _key["id"])).first()
        if revoked is None or revoked.revoked_at is not None:
            row, _key["value"] = accounts.create_api_key(conn, _key["user"], "fuzz")
            _key["id"] = row.id
    return {"Authorization": f"Bearer {_key['value']}"}


_services = Services.from_settings(_settings)
app = create_app(_settings, _services)
# The live event streams (SSE) never end by themselves: their inputs are checked in tests/test_events_stream.py.
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app).exclude(path_regex=r"events/stream$")
schema.config.seed = SEED
# Stateful runs follow the links the document declares (api/openapi.py), not links schemathesis guesses from field
# names: a guessed one from a nullable field (Webhook.botId) sends /recordings/None/… as "valid" input.
schema.config.phases.stateful.inference.algorithms = []
CASES: Counter[str] = Counter()  # requests sent, per test and generation mode
ANSWERS: Counter[int] = Counter()  # their status codes


@pytest.fixture(scope="module", autouse=True)
def webhook_worker() -> Iterator[None]:
    """A real webhooks worker: it makes the attempt that POST /webhooks/{id}/test waits for."""
    workers = WorkerProcess(_settings, _services.broker, queues={"webhooks"})
    workers.start()
    yield
    workers.stop(timeout_s=5)


def _point_webhooks_here(case: schemathesis.Case) -> None:
    """A webhook URL of the documented shape gets 127.0.0.1 for its host. Where a URL points depends on DNS, which
    no document can state (a name that does not resolve is refused: 422) and this machine has none; the shape
    itself is still generated from the document."""
    if case.operation.path.startswith("/webhooks") and isinstance(case.body, dict):
        url = case.body.get("url")
        if isinstance(url, str) and re.match(URL_PATTERN, url):
            case.body["url"] = re.sub(r"^(https?://)[^/:?]+", r"\g<1>127.0.0.1", url)


def _check_answer(case: schemathesis.Case, response: Any) -> None:
    """What every answer must satisfy, whatever sent it: below 500, and still authenticated."""
    ANSWERS[response.status_code] += 1
    assert response.status_code < 500, response.text
    if case.operation.definition.raw.get("security") and not case.operation.schema.is_security_param_negated(case):
        # Every request carries a live key (see _auth): a 401 would mean the run tests nothing but authentication.
        # (Cases that leave out or spoil the Authorization header on purpose are answered 401, as they should be.)
        assert response.status_code != 401, f"the fuzzing key was refused: {response.text}"


# Rules no JSON Schema can state, each said in the document's descriptions and tested on its own: an order between
# two fields, or a time relative to now. A 422 that gives only these reasons is a right answer to schema-valid input.
CROSS_FIELD_RULES = {"startTime must be before endTime", "endTime must be in the future", "since must be before until"}
# A PATCH of a bot is a merge patch: the merged settings must still be valid (a meetingUrl of the stored platform, a
# rule's timeout when only activateAfter is sent), which depends on the stored bot, not on the request alone.
STATE_DEPENDENT = {("PATCH", "/bots/{id}")}


def _beyond_documented_link_shapes(case: schemathesis.Case) -> bool:
    """Whether the body's meetingUrl is a link the server takes (docs/platforms.md's shapes, read as a browser reads
    them) outside the document's patterns. Those are a subset on purpose: every string they allow is accepted, which
    no pattern could also say of WHATWG URL parsing the other way round. A negative case that only mutated the link
    into another accepted shape has nothing the server should reject."""
    info = case.body.get("meetingInfo") if isinstance(case.body, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("meetingUrl"), str):
        return False
    platform, url = info.get("platform"), info["meetingUrl"]
    pattern = MEETING_URL_PATTERNS.get(platform) if isinstance(platform, str) else None
    return pattern is not None and not re.match(pattern, url) and check_meeting_url(platform, url, False) is None


def _excluded_checks(case: schemathesis.Case, response: Any) -> list[Any]:
    excluded = []
    if response.status_code < 300 and _beyond_documented_link_shapes(case):
        excluded.append(schemathesis.checks.negative_data_rejection)
    sent = set(parse_qs(urlsplit(response.request.url).query, keep_blank_values=True))
    if set(case.query or {}) - sent:
        # The HTTP client drops query parameters whose value is None or an empty list: an "unknown parameter"
        # that never reached the API had nothing to reject.
        excluded.append(schemathesis.checks.negative_data_rejection)
    if response.status_code == 422:
        reasons = {item.get("msg", "").removeprefix("Value error, ") for item in response.json()["detail"]}
        if reasons <= CROSS_FIELD_RULES or (case.method.upper(), case.operation.path) in STATE_DEPENDENT:
            excluded.append(schemathesis.checks.positive_data_acceptance)
    return excluded


@schema.parametrize()
@settings(max_examples=POSITIVE_AND_NEGATIVE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema(case: schemathesis.Case) -> None:
    _point_webhooks_here(case)
    response = case.call(headers=_auth())
    CASES[f"operations:{case.meta.generation.mode.value if case.meta else 'explicit'}"] += 1
    _check_answer(case, response)
    # Every check, positive data acceptance (ST202) and negative data rejection included: the document says what
    # the server accepts (NUL-free strings, id maximums, no special-use email domains), so a schema-valid request
    # is never refused as invalid and an invalid one never accepted.
    case.validate_response(response, excluded_checks=_excluded_checks(case, response))


class ApiWorkflows(schema.as_state_machine()):  # type: ignore[misc]
    """Sequences along the document's links: create a bot, then PATCH, deploy, kill, share, transcribe or delete
    it; create a webhook, test it, retry the delivery; create an API key, read its usage, revoke it."""

    def setup(self) -> None:
        _fresh_account()

    def before_call(self, case: schemathesis.Case) -> None:
        _point_webhooks_here(case)

    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
        return {"headers": _auth()}

    def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
        CASES["stateful"] += 1
        _check_answer(case, response)
        # Every check, the stateful ones too (a created resource can be read, a deleted one is gone), with the
        # recorder of the scenario those need.
        case.validate_response(
            response,
            excluded_checks=_excluded_checks(case, response),
            transport_kwargs=kwargs or None,
            recorder=self.recorder,
        )


def test_stateful_workflows_along_the_links() -> None:
    assert schema.statistic.transitions.selected > 0, "the document declares no links"
    ApiWorkflows.run(
        settings=settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,  # fixed, like SEED
            database=None,
            # No shrinking: a replay meets a live webhook worker and clock, not the same answers, and Hypothesis
            # would report its own "flaky" error instead of the failure; the failing scenario is shown as it ran.
            phases=[Phase.explicit, Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    assert CASES["stateful"] >= STATEFUL_SCENARIOS


def test_the_run_sent_enough_cases() -> None:
    """Last in the file: when the whole file ran, it sent at least MIN_CASES requests (issue 11)."""
    total = sum(CASES.values())
    print(f"fuzz cases: {total} ({dict(sorted(CASES.items()))}); answers: {dict(sorted(ANSWERS.items()))}")
    if not CASES["stateful"] or not CASES["operations:positive"]:
        return  # run alone (-k): nothing to count
    assert total >= MIN_CASES, dict(CASES)
