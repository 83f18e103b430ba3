"""Everything a request may use, built once per process from settings and config and closed at
shutdown: the key ring, the limiter and idempotency store (Redis or memory), the event hub and
command publisher (Kafka), the projections reader and the live feed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis

from api.auth import KeyRing, ManagedLookup, Principal, local_dev_key_allowed
from api.config import ApiConfig
from api.event_hub import EventHub
from api.feed import Feed
from api.history import EventHistory
from api.idempotency import IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore
from api.in_flight import RunsInFlight
from api.keys import CREATED as KEY_CREATED
from api.keys import KeyFollower
from api.publisher import CommandPublisher, PublishFailed
from api.rate_limits import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from api.recent_events import RecentEvents
from api.redis_client import connect_redis
from api.settings import ApiSettings
from streams.envelope import Envelope, WriterIdentity
from streams.errors import ErrorCode, PlatformError
from streams.projections_client import ProjectionsClient
from streams.wiring import serde_for, topics_for

__all__ = [
    "Kafka",
    "Services",
    "admin_authenticated",
    "authenticated",
    "running_services",
    "services_of",
]


@dataclass(frozen=True)
class Kafka:
    hub: EventHub
    publisher: CommandPublisher  # commands, and the key events of the admin API
    feed: Feed
    keys: KeyFollower


@dataclass(frozen=True)
class Services:
    settings: ApiSettings
    config: ApiConfig
    keys: KeyRing
    limiter: RateLimiter
    idempotency: IdempotencyStore
    projections: ProjectionsClient
    history: EventHistory
    recent: RecentEvents
    writer: WriterIdentity
    in_flight: RunsInFlight
    kafka_link: Kafka | None  # None without KAFKA_BOOTSTRAP_SERVERS

    def kafka(self) -> Kafka:
        """The Kafka side; ``DEPENDENCY_UNAVAILABLE`` while there is none or its consumer is not
        positioned yet (a reply could be missed, so no command may go out)."""
        if self.kafka_link is None:
            raise _bus_unavailable("KAFKA_BOOTSTRAP_SERVERS is not set")
        if not self.kafka_link.hub.ready:
            raise _bus_unavailable("event bus not reachable yet")
        return self.kafka_link

    async def publish(self, envelope: Envelope) -> None:
        """Send ``envelope`` and return once the broker acknowledged it; 503 otherwise."""
        try:
            await self.kafka().publisher.publish(envelope)
        except PublishFailed as error:
            raise _bus_unavailable(f"event bus unavailable: {error}; retry") from error

    async def publish_all(self, envelopes: list[Envelope]) -> None:
        """Send all at once; return once the broker acknowledged every one (503 otherwise, and
        some may have been delivered: callers give them ids that make a retry a duplicate)."""
        await asyncio.gather(*(self.publish(envelope) for envelope in envelopes))


def _bus_unavailable(why: str) -> PlatformError:
    return PlatformError(ErrorCode.DEPENDENCY_UNAVAILABLE, why)


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


_BEARER = HTTPBearer(auto_error=False, description="An API key listed in configs/api.yaml")


async def authenticated(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]
) -> Principal:
    """The caller; 401 unless a valid key is presented (or dev mode admits keyless calls).
    ``_`` only declares the scheme in the OpenAPI document."""
    return services_of(request).keys.authenticate(request.headers.get("authorization"))


def _managed_lookup(keys: KeyFollower, config: ApiConfig) -> ManagedLookup:
    def principal(sha256: str) -> Principal | None:
        key = keys.lookup(sha256)
        if key is None:
            return None
        return Principal(key.key_id, key.tenant, key.limits or config.limits.default)

    return principal


async def admin_authenticated(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]
) -> str:
    """The admin key's id; 401 without a key, 403 for a key that is not an admin key."""
    return services_of(request).keys.admin(request.headers.get("authorization"))


@contextlib.asynccontextmanager
async def running_services(settings: ApiSettings, config: ApiConfig) -> AsyncIterator[Services]:
    redis: Redis | None = connect_redis(settings.redis_url) if settings.redis_url else None
    ttl = config.chat.idempotency_ttl_s
    projections = ProjectionsClient(settings.clickhouse_url, settings.clickhouse_database)
    history = EventHistory(projections)
    recent = RecentEvents(config.feed.tenant_buffer)
    topics = topics_for(settings.streams)
    kafka = None
    bootstrap = settings.streams.kafka_bootstrap_servers
    if bootstrap:
        serde = serde_for(settings.streams)
        hub = EventHub(bootstrap, serde, topics.event_topics(), recent)
        publisher = CommandPublisher(bootstrap, serde, topics, config.chat.publish_timeout_s)
        followed = KeyFollower(bootstrap, serde, topics.topic_for(KEY_CREATED))
        kafka = Kafka(hub, publisher, Feed(hub, recent, history, config.feed), followed)
        hub.start()
        publisher.start()
        followed.start()
    try:
        yield Services(
            settings=settings,
            config=config,
            keys=KeyRing(
                config,
                settings.auth_mode == "dev",
                local_dev_key_allowed(config, settings.host),
                _managed_lookup(kafka.keys, config) if kafka is not None else None,
            ),
            limiter=RedisRateLimiter(redis) if redis else MemoryRateLimiter(),
            idempotency=RedisIdempotencyStore(redis, ttl) if redis else MemoryIdempotencyStore(ttl),
            projections=projections,
            history=history,
            recent=recent,
            writer=WriterIdentity("api", 5, settings.streams.env),
            in_flight=RunsInFlight(
                config.chat.max_in_flight, config.chat.max_queue_delay_ms / 1000
            ),
            kafka_link=kafka,
        )
    finally:
        if kafka is not None:
            kafka.feed.stop()
            await kafka.publisher.aclose()
            await kafka.hub.stop()
            await kafka.keys.stop()
        await projections.aclose()
        if redis is not None:
            await redis.aclose()
