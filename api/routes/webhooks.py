"""/webhooks: register receivers of signed event POSTs, read their delivery ledger, ping them, retry deliveries.

The API never connects to a webhook URL itself: it checks where the URL points (no connection), writes
deliveries and enqueues them; the `webhooks` workers send. POST /webhooks/{id}/test waits for the worker's
attempt (up to the delivery timeout and a few seconds more) and returns it; when no worker made it in time
the ping stays pending, is sent later, and `attempt` is null.
"""

from __future__ import annotations

import logging
import time

from api.routing import Context, Router
from meetbot.domain import webhooks as hooks
from meetbot.schemas.common import PageQuery, page_envelope
from meetbot.schemas.webhooks import (
    Attempt,
    Delivery,
    DeliveryList,
    DeliveryQuery,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookTest,
    WebhookUpdate,
    WebhookUpdated,
)
from meetbot.webhooks import outbox

router = Router(not_found=hooks.WEBHOOK_NOT_FOUND)
TAG = "Webhooks"
log = logging.getLogger("meetbot.api")
TEST_WAIT_EXTRA_S = 5.0  # beyond the delivery timeout: the worker's claim, DNS, and the ledger write
TEST_POLL_S = 0.05


def _enqueue(ctx: Context, delivery_id: int) -> None:
    """Send the delivery's message now; should the broker fail, the sweep sends the delivery later."""
    try:
        outbox.enqueue(ctx.services.broker, [delivery_id])
    except Exception:
        log.warning("delivery not enqueued; the sweep sends it", extra={"delivery_id": delivery_id})


@router.route("GET", "/webhooks", "List webhooks", TAG, query=PageQuery, response=WebhookList)
def list_webhooks(ctx: Context, query: PageQuery) -> bytes:
    with ctx.transaction() as conn:
        rows, total = hooks.list_webhooks(conn, ctx.user_id, query)
    return page_envelope("webhooks", Webhook, rows, total, query)


@router.route("POST", "/webhooks", "Create a webhook; its secret is shown once", TAG,
              body=WebhookCreate, response=WebhookCreated, status=201, errors=(404, 409))  # fmt: skip
def create_webhook(ctx: Context, body: WebhookCreate) -> WebhookCreated:
    hooks.check_url(body.url, ctx.services.settings.webhook_allow_private)
    with ctx.transaction() as conn:
        row, secret = hooks.create_webhook(conn, ctx.user_id, body, ctx.services.settings.webhook_max_per_user)
    return WebhookCreated.model_validate({**row._mapping, "secret": secret})


@router.route("GET", "/webhooks/{id}", "A webhook (without its secret)", TAG, response=Webhook, errors=(404,))
def get_webhook(ctx: Context, id: int) -> Webhook:
    with ctx.transaction() as conn:
        return Webhook.model_validate(hooks.get_webhook(conn, ctx.user_id, id))


@router.route("PATCH", "/webhooks/{id}", "Change a webhook; rotateSecret returns a new secret once", TAG,
              body=WebhookUpdate, response=WebhookUpdated, errors=(404,))  # fmt: skip
def update_webhook(ctx: Context, id: int, body: WebhookUpdate) -> WebhookUpdated:
    if body.url is not None:
        with ctx.transaction() as conn:
            hooks.get_webhook(conn, ctx.user_id, id)  # 404 before any look-up of the new URL
        hooks.check_url(body.url, ctx.services.settings.webhook_allow_private)
    with ctx.transaction() as conn:
        row, secret = hooks.update_webhook(conn, ctx.user_id, id, body)
    return WebhookUpdated.model_validate({**row._mapping, "secret": secret})


@router.route("DELETE", "/webhooks/{id}", "Delete a webhook and its delivery history", TAG, status=204, errors=(404,))
def delete_webhook(ctx: Context, id: int) -> None:
    with ctx.transaction() as conn:
        hooks.delete_webhook(conn, ctx.user_id, id)


@router.route("POST", "/webhooks/{id}/test", "Send a ping now and return its attempt", TAG,
              response=WebhookTest, errors=(404,))  # fmt: skip
def test_webhook(ctx: Context, id: int) -> WebhookTest:
    with ctx.transaction() as conn:
        delivery_id = hooks.create_ping(conn, ctx.user_id, id)
    _enqueue(ctx, delivery_id)
    deadline = time.monotonic() + ctx.services.settings.webhook_timeout_seconds + TEST_WAIT_EXTRA_S
    attempt = None
    while attempt is None and time.monotonic() < deadline:
        time.sleep(TEST_POLL_S)
        with ctx.transaction() as conn:
            attempt = hooks.attempt_after(conn, delivery_id, 0)
    with ctx.transaction() as conn:
        delivery = hooks.get_delivery(conn, ctx.user_id, id, delivery_id)
    return WebhookTest(
        delivery=Delivery.model_validate(delivery),
        attempt=Attempt.model_validate(attempt) if attempt is not None else None,
    )


@router.route("GET", "/webhooks/{id}/deliveries", "The webhook's deliveries, newest first, with every attempt",
              TAG, query=DeliveryQuery, response=DeliveryList, errors=(404,))  # fmt: skip
def list_deliveries(ctx: Context, id: int, query: DeliveryQuery) -> bytes:
    with ctx.transaction() as conn:
        rows, total = hooks.list_deliveries(conn, ctx.user_id, id, query)
    return page_envelope("deliveries", Delivery, rows, total, query)


@router.route("POST", "/webhooks/{id}/deliveries/{delivery_id}/retry", "Send a delivery again now", TAG,
              response=Delivery, status=202, errors=(404, 409))  # fmt: skip
def retry_delivery(ctx: Context, id: int, delivery_id: int) -> Delivery:
    with ctx.transaction() as conn:
        delivery = hooks.retry_delivery(conn, ctx.user_id, id, delivery_id)
    _enqueue(ctx, delivery_id)
    return Delivery.model_validate(delivery)
