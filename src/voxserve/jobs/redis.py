"""The shared job store: Redis, for several gateways and workers on several machines.

The same lease design as the SQLite store, on Redis primitives. Every key
shares one hash tag (``{voxserve}`` by default) so the Lua scripts stay valid
on a cluster. Keys under the prefix:

- ``job:<id>``: the job as JSON; ``text:<id>``: its input text, written once;
- ``queue``: ready jobs, scored so ZPOPMIN gives the highest priority, oldest first;
- ``scheduled``: jobs waiting for their ``run_at`` (also retries in backoff);
- ``running``: leased jobs, scored by lease expiry;
- ``finished``: ended jobs, scored by end time (retention and listing);
- ``all``: every job by creation order (listing);
- ``score``: each job's place in the queue; ``idem:<key>``: idempotency keys;
- ``wake``: a list idle workers block on, pushed by every enqueue.

A submission carries a deadline (:data:`~voxserve.redisconn.WRITE_DEADLINE`):
one that reaches a Redis that was paused after its sender gave up stores
nothing, so a 503 means no job.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.exceptions import ConnectionError, RedisError

from voxserve.errors import StoreUnavailable
from voxserve.jobs.models import Job, JobStatus, now
from voxserve.jobs.store import JobStore
from voxserve.redisconn import CLOCK, STORE_TIMEOUT, WRITE_DEADLINE, redis_client

# Index maintenance shared by every script that writes a job: the job is in
# exactly the index its status calls for.
_INDEX = """
local function index(p, id, job, now)
    redis.call('ZREM', p .. 'queue', id)
    redis.call('ZREM', p .. 'scheduled', id)
    redis.call('ZREM', p .. 'running', id)
    if job.status == 'queued' then
        if job.run_at > now then
            redis.call('ZADD', p .. 'scheduled', job.run_at, id)
        else
            redis.call('ZADD', p .. 'queue', redis.call('HGET', p .. 'score', id), id)
        end
    elseif job.status == 'running' then
        redis.call('ZADD', p .. 'running', job.lease_expires, id)
    else
        redis.call('ZADD', p .. 'finished', job.finished_at, id)
    end
end
"""

#: A job stored once: 1 when this call stored it; its idempotency key's job if there is one, the same
#: job if a retry of this very call already stored it; nothing (false) if it arrived after its deadline.
_INSERT = (
    _INDEX
    + CLOCK
    + """
local p, id, data, key, now, text = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
if key ~= '' then
    local existing = redis.call('GET', p .. 'idem:' .. key)
    if existing then return redis.call('GET', p .. 'job:' .. existing) end
end
local stored = redis.call('GET', p .. 'job:' .. id)
if stored then return stored end
if clock() > tonumber(ARGV[7]) then return false end
if key ~= '' then redis.call('SET', p .. 'idem:' .. key, id) end
local job = cjson.decode(data)
local seq = redis.call('INCR', p .. 'seq')
redis.call('HSET', p .. 'score', id, (9 - job.priority) * 1e13 + seq)
redis.call('SET', p .. 'job:' .. id, data)
redis.call('SET', p .. 'text:' .. id, text)
redis.call('ZADD', p .. 'all', seq, id)
index(p, id, job, now)
redis.call('LPUSH', p .. 'wake', 1)
redis.call('LTRIM', p .. 'wake', 0, 63)
return 1
"""
)

_CLAIM = """
local p, worker, lease, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'scheduled', '-inf', now, 'LIMIT', 0, 100)) do
    redis.call('ZREM', p .. 'scheduled', id)
    redis.call('ZADD', p .. 'queue', redis.call('HGET', p .. 'score', id), id)
end
local popped = redis.call('ZPOPMIN', p .. 'queue')
if #popped == 0 then return false end
local id = popped[1]
local job = cjson.decode(redis.call('GET', p .. 'job:' .. id))
job.status = 'running'
job.lease_owner = worker
job.lease_expires = lease
job.attempts = job.attempts + 1
if job.started_at == cjson.null then job.started_at = now end
job.updated_at = now
job.version = job.version + 1
local data = cjson.encode(job)
redis.call('SET', p .. 'job:' .. id, data)
redis.call('ZADD', p .. 'running', lease, id)
return data
"""

_REPLACE = (
    _INDEX
    + """
local p, id, data, expected, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local current = redis.call('GET', p .. 'job:' .. id)
if not current or cjson.decode(current).version ~= expected then return 0 end
redis.call('SET', p .. 'job:' .. id, data)
index(p, id, cjson.decode(data), now)
return 1
"""
)

_DELETE = """
local p, id = ARGV[1], ARGV[2]
local current = redis.call('GET', p .. 'job:' .. id)
if current then
    local job = cjson.decode(current)
    if job.idempotency_key ~= cjson.null then redis.call('DEL', p .. 'idem:' .. job.idempotency_key) end
end
redis.call('DEL', p .. 'job:' .. id, p .. 'text:' .. id)
for _, index in ipairs({'queue', 'scheduled', 'running', 'finished', 'all'}) do
    redis.call('ZREM', p .. index, id)
end
redis.call('HDEL', p .. 'score', id)
return 1
"""


class RedisJobStore(JobStore):
    """Jobs in Redis at ``url`` under ``prefix``."""

    errors = (RedisError, OSError)

    def __init__(self, url: str, prefix: str = "{voxserve}", poll_interval: float = 0.5) -> None:
        super().__init__()
        self.redis = redis_client(url)
        self.prefix = prefix + ":"
        self.poll_interval = poll_interval
        self._insert_script = self.redis.register_script(_INSERT)
        self._claim_script = self.redis.register_script(_CLAIM)
        self._replace_script = self.redis.register_script(_REPLACE)
        self._delete_script = self.redis.register_script(_DELETE)

    def _key(self, name: str) -> str:
        return self.prefix + name

    @staticmethod
    def _job(data: Any) -> Job | None:
        return None if not data else Job.from_dict(json.loads(data))

    async def _insert(self, job: Job, text: str) -> Job:
        data = json.dumps(job.to_dict())
        deadline = now() + WRITE_DEADLINE
        try:
            stored = await self._insert_script(
                args=[self.prefix, job.id, data, job.idempotency_key or "", job.created_at, text, deadline]
            )
        except (ConnectionError, OSError):  # the connection broke: the job may be written, its answer lost
            found = await self._outcome(job.id, deadline)
            if found is None:
                raise
            return found
        if stored == 1:
            return job
        found = self._job(stored)
        if found is None:
            raise StoreUnavailable("the job store answered too late; nothing was queued, retry shortly")
        return found

    async def _outcome(self, job_id: str, deadline: float) -> Job | None:
        """Whether an insert whose connection broke stored the job: Redis may have written it and
        then been killed before it answered (a paused Redis times out instead, and the deadline
        keeps a late insert from storing). Asked until Redis answers after the insert's deadline
        (a copy still on its way then stores nothing), for at most :data:`STORE_TIMEOUT` more: the
        job, or None when it was not stored, or when Redis stayed away (then nobody knows)."""
        give_up = deadline + STORE_TIMEOUT
        while now() < give_up:
            try:
                found = await self.get(job_id)
            except self.errors:
                found = None
            else:
                if found is not None or now() > deadline:
                    return found
            await asyncio.sleep(min(0.25, max(0.0, deadline - now()) or 0.25))
        return None

    async def _idempotent(self, key: str) -> Job | None:
        job_id = await self.redis.get(self._key("idem:" + key))
        return None if job_id is None else await self.get(str(job_id))

    async def _claim(self, worker_id: str, lease_until: float, at: float) -> Job | None:
        return self._job(await self._claim_script(args=[self.prefix, worker_id, lease_until, at]))

    async def _replace(self, job: Job, expected_version: int) -> bool:
        data = json.dumps(job.to_dict())
        return bool(await self._replace_script(args=[self.prefix, job.id, data, expected_version, now()]))

    async def get(self, job_id: str) -> Job | None:
        return self._job(await self.redis.get(self._key("job:" + job_id)))

    async def text(self, job_id: str) -> str | None:
        value = await self.redis.get(self._key("text:" + job_id))
        return None if value is None else str(value)

    async def _list(
        self, status: JobStatus | None, limit: int, before: str | None, owner: str | None
    ) -> list[Job]:
        index = self._key("all")
        top = "+inf"
        if before is not None:
            score = await self.redis.zscore(index, before)
            top = f"({score}" if score is not None else "+inf"
        jobs: list[Job] = []
        while len(jobs) < limit:
            ids = [
                str(i) for i in await self.redis.zrevrangebyscore(index, top, "-inf", start=0, num=limit * 2)
            ]
            if not ids:
                break
            for data in await self.redis.mget([self._key("job:" + i) for i in ids]):
                job = self._job(data)
                if job is None or (status is not None and job.status is not status):
                    continue
                if (owner is None or job.owner == owner) and len(jobs) < limit:
                    jobs.append(job)
            top = f"({await self.redis.zscore(index, ids[-1])}"
        return jobs

    async def _expired_leases(self, at: float) -> list[str]:
        return [str(i) for i in await self.redis.zrangebyscore(self._key("running"), "-inf", at)]

    async def _finished_before(self, at: float) -> list[str]:
        return [str(i) for i in await self.redis.zrangebyscore(self._key("finished"), "-inf", at)]

    async def _delete(self, job_id: str) -> None:
        await self._delete_script(args=[self.prefix, job_id])

    async def counts(self) -> dict[str, int]:
        states = {"queued": "queue", "scheduled": "scheduled", "running": "running", "ended": "finished"}
        async with self.redis.pipeline(transaction=False) as pipe:
            for index in states.values():
                pipe.zcard(self._key(index))
            sizes = await pipe.execute()
        return {state: int(size) for state, size in zip(states, sizes, strict=True)}

    async def _wait_for_work(self, timeout: float) -> None:
        # Every enqueue, from any process, pushes to the wake list.
        await self.redis.blpop([self._key("wake")], timeout=min(timeout, self.poll_interval))

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> None:
        await self.redis.ping()
