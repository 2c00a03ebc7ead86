"""MEETBOT_BROKER_URL=amqp://… runs the queues on RabbitMQ (the server on 127.0.0.1:5672), durable."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import dramatiq
import pika
import pika.exceptions
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.common import dq_name, xq_name

from meetbot import queue
from meetbot.settings import Settings

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture
def rabbit_queue() -> Iterator[str]:
    """A queue name no one else uses; it and its delay and dead-letter queues are deleted afterwards."""
    name = f"meetbot-test-{uuid.uuid4().hex[:12]}"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        for queue_name in (name, dq_name(name), xq_name(name)):
            channel.queue_delete(queue=queue_name)
    finally:
        connection.close()


def test_amqp_broker_url_delivers_messages_to_a_worker_through_durable_queues(tmp_path, rabbit_queue: str) -> None:
    settings = Settings(data_dir=tmp_path, broker_url=RABBITMQ_URL)
    broker = queue.build_broker(settings)
    assert isinstance(broker, RabbitmqBroker)

    received: list[tuple[int, str]] = []
    done = threading.Event()

    def record(bot_id: int, note: str) -> None:
        received.append((bot_id, note))
        done.set()

    actor_name = f"record_{rabbit_queue.replace('-', '_')}"
    dramatiq.actor(record, broker=broker, actor_name=actor_name, queue_name=rabbit_queue)

    sent = queue.send(broker, rabbit_queue, actor_name, 42, "hello")  # what the API does, by actor name only
    assert broker.get_queue_message_counts(rabbit_queue)[0] == 1  # held by the server before any worker runs

    # The queue is durable: declaring it non-durable is refused by the server.
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            connection.channel().queue_declare(queue=rabbit_queue, durable=False)
        assert refused.value.reply_code == 406  # PRECONDITION_FAILED: it exists with durable=True
    finally:
        connection.close()

    worker = dramatiq.Worker(broker, queues={rabbit_queue}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        assert done.wait(20), "the worker never ran the message"
    finally:
        worker.stop()
        broker.close()
    assert received == [(42, "hello")]
    assert sent.queue_name == rabbit_queue


def test_redis_and_embedded_brokers_are_unchanged(tmp_path) -> None:
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.brokers.stub import StubBroker

    assert isinstance(queue.build_broker(Settings(data_dir=tmp_path)), StubBroker)
    redis_broker = queue.build_broker(Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/15"))
    assert isinstance(redis_broker, RedisBroker)


def test_readyz_reports_an_unreachable_rabbitmq(tmp_path) -> None:
    from api.routes.system import readiness
    from api.services import Services
    from tests.support import free_port

    reachable = Services.from_settings(Settings(data_dir=tmp_path / "up", broker_url=RABBITMQ_URL))
    status, body = readiness(reachable)
    assert (status, body["broker"]) == (200, "ok")

    closed_port = free_port()  # nothing listens there
    down_url = f"amqp://guest:guest@127.0.0.1:{closed_port}/"
    unreachable = Services.from_settings(Settings(data_dir=tmp_path / "down", broker_url=down_url))
    status, body = readiness(unreachable)
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["broker"].startswith("error: ")
