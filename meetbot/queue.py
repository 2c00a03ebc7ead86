"""Dramatiq broker setup (Redis, or an in-process StubBroker) and message sending by actor name."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from meetbot.settings import Settings

QUEUE_BOTS = "bots"
QUEUE_TRANSCRIBE = "transcribe"
QUEUE_SUMMARIZE = "summarize"
QUEUE_WEBHOOKS = "webhooks"
QUEUE_MAINTENANCE = "maintenance"
QUEUES = (QUEUE_BOTS, QUEUE_TRANSCRIBE, QUEUE_SUMMARIZE, QUEUE_WEBHOOKS, QUEUE_MAINTENANCE)

ACTOR_RUN_BOT = "run_bot"
ACTOR_REAP = "reap_stale_bots"


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A Redis broker when MEETBOT_REDIS_URL is set, else an in-process one (embedded mode)."""
    broker: dramatiq.Broker = (
        RedisBroker(url=settings.redis_url, namespace="meetbot") if settings.redis_url else StubBroker()
    )
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


def send(
    broker: dramatiq.Broker, queue: str, actor: str, *args: object, delay_ms: int | None = None
) -> dramatiq.Message:
    """Enqueue a message for an actor by name: the API needs no worker code to do it."""
    message = dramatiq.Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options={})
    return broker.enqueue(message, delay=delay_ms or None)
