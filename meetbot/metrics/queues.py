"""Age of the oldest message waiting on each queue, read from the broker at scrape time (Redis and in-process only).

Redis (Dramatiq's RedisBroker): a queue is the list `<namespace>:<queue>` of message ids (pushed on the right,
taken from the left) and the hash `<namespace>:<queue>.msgs` of id → encoded message, whose message_timestamp
(ms) is when it was sent; a delayed message counts from its eta, when it became due. RabbitMQ tells queue depths
but not message ages without taking the messages: there only meetbot_queue_depth is reported.
"""

from __future__ import annotations

import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from meetbot import queue

SAMPLE = 100  # messages read from the head of each queue (requeued ones go to its tail, out of age order)


def _waiting_since_ms(raw: bytes) -> int:
    message = dramatiq.Message.decode(raw)
    return max(int(message.message_timestamp), int(message.options.get("eta") or 0))


def oldest_message_ages(broker: dramatiq.Broker) -> dict[str, float]:
    """Queue → seconds its oldest waiting message has waited (0 when none waits); {} for a broker that cannot say.

    Waiting: sent, due, not taken by a worker (what `meetbot_queue_depth` adds — delayed messages and, on Redis,
    messages taken but not yet acknowledged — does not count here).
    """
    now_ms = time.time() * 1000
    ages: dict[str, float] = {}
    for name in queue.QUEUES:
        if isinstance(broker, RedisBroker):
            ids = broker.client.lrange(f"{broker.namespace}:{name}", 0, SAMPLE - 1)
            raws = broker.client.hmget(f"{broker.namespace}:{name}.msgs", ids) if ids else []
        elif isinstance(broker, StubBroker):
            waiting = broker.queues.get(name)
            raws = list(waiting.queue)[:SAMPLE] if waiting is not None else []
        else:
            return {}
        since = [_waiting_since_ms(raw) for raw in raws if raw is not None]
        ages[name] = max(0.0, (now_ms - min(since)) / 1000) if since else 0.0
    return ages
