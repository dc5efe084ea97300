"""The process-wide services one app (or one worker) uses: settings, database, cache, queue."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lti_tool.cache import Cache, DatabaseCache, RedisCache
from lti_tool.db import make_engine, make_session_factory
from lti_tool.evidence.storage import Storage, make_storage
from lti_tool.settings import Settings


@dataclass
class Services:
    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        url = self.settings.resolved_database_url
        if url.startswith("sqlite"):
            self.settings.instance_dir.mkdir(parents=True, exist_ok=True)
        return make_engine(url)

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        from lti_tool.outbox.service import enqueue_after_commit

        factory = make_session_factory(self.engine)
        enqueue_after_commit(factory, self)
        return factory

    @cached_property
    def redis(self) -> Redis | None:
        if not self.settings.redis_url:
            return None
        return Redis.from_url(self.settings.redis_url, socket_timeout=5, socket_connect_timeout=5)

    @cached_property
    def cache(self) -> Cache:
        if self.redis is not None:
            return RedisCache(self.redis)
        return DatabaseCache(self.session_factory)

    @cached_property
    def storage(self) -> Storage:
        """Evidence files: S3 when LTI_TOOL_S3_BUCKET is set, else instance_path/evidence."""
        return make_storage(self.settings)
