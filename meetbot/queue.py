"""Dramatiq broker setup (Redis, RabbitMQ or an in-process StubBroker) and message sending by actor name."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name

from meetbot.settings import Settings

QUEUE_BOTS = "bots"
QUEUE_TRANSCRIBE = "transcribe"
QUEUE_SUMMARIZE = "summarize"
QUEUE_WEBHOOKS = "webhooks"
QUEUE_MAINTENANCE = "maintenance"
QUEUES = (QUEUE_BOTS, QUEUE_TRANSCRIBE, QUEUE_SUMMARIZE, QUEUE_WEBHOOKS, QUEUE_MAINTENANCE)

ACTOR_RUN_BOT = "run_bot"
ACTOR_REAP = "reap_stale_bots"
ACTOR_EXPIRE_RECORDINGS = "expire_recordings"
ACTOR_TRANSCRIBE = "transcribe_recording"
ACTOR_TRANSCRIBE_CHUNK = "transcribe_chunk"
ACTOR_SUMMARIZE = "summarize_transcript"
ACTOR_DELIVER_WEBHOOK = "deliver_webhook"
ACTOR_SEND_DUE_WEBHOOKS = "send_due_webhooks"


def build_broker(settings: Settings) -> dramatiq.Broker:
    """RabbitMQ when MEETBOT_BROKER_URL is amqp://…, else Redis (MEETBOT_BROKER_URL or MEETBOT_REDIS_URL), else an
    in-process broker (embedded mode)."""
    broker: dramatiq.Broker
    broker_url = settings.broker_url or settings.redis_url
    if broker_url and broker_url.startswith(("amqp://", "amqps://")):
        # Dramatiq declares every RabbitMQ queue durable; confirmed publishes: a send returns once the server has it.
        broker = RabbitmqBroker(url=broker_url, confirm_delivery=True)
    elif broker_url:
        broker = RedisBroker(
            url=broker_url,
            namespace="meetbot",
            heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
            maintenance_chance=settings.broker_maintenance_chance,
        )
    else:
        broker = StubBroker()
    for queue in QUEUES:
        broker.declare_queue(queue)
    from meetbot.webhooks import outbox

    outbox.use_broker(broker)  # webhook deliveries recorded in this process are enqueued here after commit
    return broker


def message_for(queue: str, actor: str, *args: object) -> dramatiq.Message:
    """A message for an actor by name (its message_id is known before it is sent)."""
    return dramatiq.Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options={})


def send(
    broker: dramatiq.Broker, queue: str, actor: str, *args: object, delay_ms: int | None = None
) -> dramatiq.Message:
    """Enqueue a message for an actor by name: the API needs no worker code to do it."""
    return broker.enqueue(message_for(queue, actor, *args), delay=delay_ms or None)


def run_bot_message(bot_id: int, attempt: int) -> dramatiq.Message:
    return message_for(QUEUE_BOTS, ACTOR_RUN_BOT, bot_id, attempt)


def message_pending(broker: dramatiq.Broker, queue: str, message_id: str) -> bool:
    """Whether the broker still holds the message (waiting, delayed, or taken but not yet acknowledged).

    Scans the queue's stored messages: cheap for the reaper's few checks of stuck deploys.
    """
    needle = message_id.encode()
    names = (queue, dq_name(queue))
    if isinstance(broker, RedisBroker):
        return any(needle in raw for name in names for raw in broker.client.hvals(f"{broker.namespace}:{name}.msgs"))
    if isinstance(broker, StubBroker):
        stored = [broker.queues[name] for name in names if name in broker.queues]
        return any(needle in raw for waiting in stored for raw in list(waiting.queue))
    return True  # unknown broker: never assume a message was lost


def queue_depths(broker: dramatiq.Broker) -> dict[str, int]:
    """Messages each queue holds (waiting, delayed and, on Redis, taken but unacknowledged): the autoscaling signal."""
    depths: dict[str, int] = {}
    for queue in QUEUES:
        if isinstance(broker, RedisBroker):
            depths[queue] = sum(
                int(broker.client.hlen(f"{broker.namespace}:{name}.msgs")) for name in (queue, dq_name(queue))
            )
        elif isinstance(broker, RabbitmqBroker):
            waiting, delayed, _dead = broker.get_queue_message_counts(queue)
            depths[queue] = waiting + delayed
        elif isinstance(broker, StubBroker):
            depths[queue] = sum(
                broker.queues[name].qsize() for name in (queue, dq_name(queue)) if name in broker.queues
            )
    return depths
