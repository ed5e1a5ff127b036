"""Chaos: mixed load on two gateways and two workers sharing one Redis and one storage, with faults
on a schedule, and what must still hold at the end.

The cast, all on loopback: a Redis of its own (every write on disk before it is answered), a shared
storage directory, two CosyVoice stand-in instances behind one pool, two ``voxserve serve`` gateways
(keys on) and two ``voxserve worker`` processes, each with its own data directory.

The load, from the start to the end: streamed speech (hibari, and the CosyVoice pool), jobs with
an Idempotency-Key retried as a careful client does, jobs without one, jobs on a key with a small
daily quota, voice uploads, hostile requests from a list, a ``voxserve batch`` run, and ``/healthz``
probes of both gateways.

The faults, once per cycle (two minutes): worker B SIGKILLed and started again; Redis paused
(SIGSTOP) for 7 s; Redis killed and restarted; one engine instance killed and restarted; job storage
filled to its limit; gateway B stopped and started again. Gateway A and worker A live through the
whole run, so their memory and open files can be watched.

The invariants are checked after the load stops, and printed as a table.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import math
import os
import random
import statistics
import subprocess
import tempfile
import time
import wave
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness.instances import ROOT, engine_instances, instance_command, wait_listening
from harness.redisproc import PrivateRedis
from harness.server import NO_CACHE, VOXSERVE, Process, start, start_server
from harness.texts import SHORT_TEXTS

CYCLE = 120.0  # seconds: every fault once
GATEWAYS = ("gateway-a", "gateway-b")
GRACE = 10.0  # seconds after a fault ends during which its errors still count as its own
DISK_LIMIT = 4_000_000_000  # the filler that reaches it is a sparse file: no real disk is taken
REDIS_PAUSE = 7.0  # longer than a store call waits (5 s): requests meet 503s, not only a delay
JOB_PAUSE = 2.0  # seconds between one client's jobs: about what two workers make
STREAM_LEASE_SECONDS = 15
CHINESE = "今天天气很好，我们一起去公园散步吧。"
#: 5xx answers a fault may cause, by status and code: the store or an engine away, storage full.
DOCUMENTED = {
    (503, "store_unavailable"),
    (503, "not_ready"),
    (503, "engine_unavailable"),
    (507, "insufficient_storage"),
    (504, "engine_timeout"),
}


@dataclass
class Ledger:
    """What the clients were told, and what they saw go wrong."""

    accepted_chars: Counter[str] = field(default_factory=Counter)  # by key: speech 200s, jobs created
    uncertain_chars: Counter[str] = field(default_factory=Counter)  # sent, answer lost in a fault
    jobs: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # job id -> (key, name, chars)
    refused_names: list[str] = field(default_factory=list)  # jobs answered "not stored"
    server_errors: list[tuple[float, int, str, str]] = field(default_factory=list)
    outside_faults: list[str] = field(default_factory=list)
    wrong_answers: list[str] = field(default_factory=list)
    healthz: list[float] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    faults: list[tuple[str, float, float]] = field(default_factory=list)  # (what, start, end)

    def during_fault(self, at: float) -> bool:
        return any(start <= at <= end + GRACE for _, start, end in self.faults)

    def since_fault(self, at: float) -> str:
        """When ``at`` was, against the fault that ended last before it."""
        ended = [(at - end, what) for what, _, end in self.faults if end <= at]
        return f"{min(ended)[0]:.1f} s after '{min(ended)[1]}' ended" if ended else "before any fault"

    def answer(self, what: str, response: httpx.Response) -> None:
        """Count an answer; a 5xx must be a documented one, during a fault."""
        self.counts[f"{what} {response.status_code}"] += 1
        if response.status_code >= 500:
            code = _code(response)
            at = time.monotonic()
            self.server_errors.append((at, response.status_code, code, what))
            if (response.status_code, code) not in DOCUMENTED or not self.during_fault(at):
                self.outside_faults.append(f"{what}: {response.status_code} {code} {self.since_fault(at)}")

    def lost(self, what: str, exc: Exception) -> None:
        """A request whose answer never came (a gateway restarting): only during a fault."""
        self.counts[f"{what} lost"] += 1
        if not self.during_fault(time.monotonic()):
            self.outside_faults.append(f"{what}: {type(exc).__name__} {self.since_fault(time.monotonic())}")


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "?"


@dataclass
class Cast:
    """Every process of the run, and how to reach it."""

    directory: Path
    redis: PrivateRedis
    env: dict[str, str]
    gateways: list[Process]
    workers: list[Process]
    instances: list[tuple[str, subprocess.Popen[bytes]]]
    keys: dict[str, str] = field(default_factory=dict)

    def gateway(self) -> str:
        return random.choice(self.gateways).url

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}


def _config(directory: Path, redis_url: str, instances: list[str]) -> Path:
    config = directory / "voxserve.toml"
    config.write_text(
        f"""default_engine = "hibari"
embedded = false
[jobs]
queue_url = "{redis_url}"
workers = 0
lease_seconds = 6
retry_base_seconds = 1
retry_cap_seconds = 4
max_attempts = 20
disk_limit_bytes = {DISK_LIMIT}
[storage]
url = "{directory / "storage"}"
[auth]
enabled = true
[[engines]]
name = "hibari"
kind = "hibari"
[[engines]]
name = "cosy"
kind = "cosyvoice"
instances = {json.dumps(instances)}
max_concurrency = 4
options = {{ generation = 1, voices = ["中文女"] }}
""",
        encoding="utf-8",
    )
    return config


#: The run's keys: their scopes and limits.
KEYS: dict[str, dict[str, Any]] = {
    "streamer": {"scopes": ["speech"], "limits": {"concurrent_streams": 3}},
    "producer": {"scopes": ["speech", "jobs", "voices"]},
    "naked": {"scopes": ["jobs"]},
    "tight": {"scopes": ["jobs"], "limits": {"chars_per_day": 3000}},
    "batcher": {"scopes": ["speech"]},
}


def _keys(env: dict[str, str], directory: Path, gateway: str) -> dict[str, str]:
    """An admin key made with ``voxserve keys create`` (its token is the last line printed), and the
    others with it through the API."""
    command = [str(VOXSERVE), "keys", "create", "ops", "--scope", "admin"]
    made = subprocess.run(
        command,
        env={**os.environ, **env, "VOXSERVE_DATA_DIR": str(directory)},
        capture_output=True,
        text=True,
        check=True,
    )
    tokens = {"ops": made.stdout.strip().splitlines()[-1]}
    for name, body in KEYS.items():
        answer = httpx.post(
            f"{gateway}/v1/admin/keys",
            json={"name": name, **body},
            headers={"Authorization": f"Bearer {tokens['ops']}"},
            timeout=10,
        )
        answer.raise_for_status()
        tokens[name] = answer.json()["token"]
    return tokens


def _gateway(cast_dir: Path, name: str, env: dict[str, str], port: int | None = None) -> Process:
    return start_server(cast_dir / name, cast_dir / f"{name}.log", env, port)


def _worker(cast_dir: Path, name: str, env: dict[str, str]) -> Process:
    return start(["worker", "--workers", "2"], cast_dir / name, cast_dir / f"{name}.log", env)


# -- the load ------------------------------------------------------------------------------------


async def _streams(cast: Cast, ledger: Ledger, until: float, model: str) -> None:
    """Streamed speech, one after another; a 200 is charged whether or not its body arrives whole."""
    async with httpx.AsyncClient(timeout=60) as http:
        while time.monotonic() < until:
            text = random.choice(SHORT_TEXTS) if model == "hibari" else CHINESE
            body = {"input": text, "model": model, "response_format": "pcm"}
            try:
                async with http.stream(
                    "POST", f"{cast.gateway()}/v1/audio/speech", json=body, headers=cast.headers("streamer")
                ) as response:
                    if response.status_code == 200:
                        cast_chars = len(text)
                        try:
                            size = sum([len(chunk) async for chunk in response.aiter_bytes()])
                        except httpx.HTTPError as exc:
                            ledger.uncertain_chars["streamer"] += cast_chars
                            ledger.lost(f"speech {model} body", exc)
                            continue
                        ledger.accepted_chars["streamer"] += cast_chars
                        if size < 24000:  # under half a second of audio
                            ledger.wrong_answers.append(f"speech {model}: {size} bytes of audio")
                    else:
                        await response.aread()
                    ledger.answer(f"speech {model}", response)
                    if response.status_code == 429:  # all the key's streams are in use: as Retry-After says
                        await asyncio.sleep(1.0)
            except httpx.HTTPError as exc:
                ledger.uncertain_chars["streamer"] += len(text)
                ledger.lost(f"speech {model}", exc)
                await asyncio.sleep(0.5)


async def _jobs(cast: Cast, ledger: Ledger, until: float, worker: int, key: str, idempotent: bool) -> None:
    """Jobs of a few sentences. With an Idempotency-Key, a lost or 503 answer is retried with the same
    key until the job is stored or refused; without one, a 503 or 507 means "not stored"."""
    async with httpx.AsyncClient(timeout=30) as http:
        for number in itertools.count():
            if time.monotonic() > until:
                return
            name = f"chaos-{key}-{worker}-{number}"
            text = " ".join(random.sample(SHORT_TEXTS, 3))
            body = {"input": text, "response_format": "wav", "name": name}
            headers = cast.headers(key) | ({"Idempotency-Key": name} if idempotent else {})
            while True:
                try:
                    response = await http.post(f"{cast.gateway()}/v1/jobs", json=body, headers=headers)
                except httpx.HTTPError as exc:
                    ledger.lost(f"job {key}", exc)
                    if idempotent:
                        await asyncio.sleep(0.5)
                        continue
                    ledger.uncertain_chars[key] += len(text)
                    break
                ledger.answer(f"job {key}", response)
                if response.status_code == 202:
                    job = response.json()
                    if response.headers.get("Idempotent-Replayed") != "true":
                        ledger.accepted_chars[key] += len(text)
                    ledger.jobs[job["id"]] = (key, name, len(text))
                    break
                if response.status_code in (503, 507, 429):
                    if idempotent and response.status_code == 503:
                        await asyncio.sleep(0.5)
                        continue
                    ledger.refused_names.append(name)
                    await asyncio.sleep(1.0 if response.status_code == 429 else 0.2)
                    break
                ledger.wrong_answers.append(f"job {key}: {response.status_code} {response.text[:200]}")
                break
            await asyncio.sleep(JOB_PAUSE)


async def _uploads(cast: Cast, ledger: Ledger, until: float, reference: bytes) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for number in itertools.count():
            if time.monotonic() > until:
                return
            files = {"audio": ("me.wav", reference, "audio/wav")}
            try:
                response = await http.post(
                    f"{cast.gateway()}/v1/voices",
                    data={"name": f"reader-{number}"},
                    files=files,
                    headers=cast.headers("producer"),
                )
                ledger.answer("voice upload", response)
                if response.status_code < 500 and response.status_code not in (200, 201):
                    ledger.wrong_answers.append(f"voice upload: {response.status_code} {response.text[:200]}")
            except httpx.HTTPError as exc:
                ledger.lost("voice upload", exc)
            await asyncio.sleep(3.0)


JSON = {"Content-Type": "application/json"}
#: (what, method, path, request arguments, the status it must get): each answered before any engine.
HOSTILE: list[tuple[str, str, str, dict[str, Any], int]] = [
    ("no key", "POST", "/v1/audio/speech", {"json": {"input": "hi"}}, 401),
    ("bad JSON", "POST", "/v1/audio/speech", {"content": b"{nope", "headers": JSON}, 400),
    ("wrong type", "POST", "/v1/audio/speech", {"json": {"input": 5}}, 400),
    ("oversize", "POST", "/v1/audio/speech", {"json": {"input": "a" * 5000}}, 413),
    ("unknown voice", "POST", "/v1/audio/speech", {"json": {"input": "hi", "voice": "nobody-here"}}, 404),
    ("path trick", "POST", "/tts", {"data": {"text": "hi", "audio_path": "../../etc/passwd"}}, 403),
    ("bad audio", "POST", "/v1/voices", {"files": {"audio": ("x.wav", b"RIFF" + bytes(400), "a/x")}}, 415),
    ("another key's job", "GET", "/v1/jobs/j_notyours", {}, 404),
    ("digit flood", "POST", "/v1/jobs", {"json": {"input": "7" * 300_000}}, 413),
]


async def _hostile(cast: Cast, ledger: Ledger, until: float) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for what, method, path, arguments, status in itertools.cycle(HOSTILE):
            if time.monotonic() > until:
                return
            key = {} if what == "no key" else cast.headers("producer")
            request = {**arguments, "headers": key | arguments.get("headers", {})}
            try:
                response = await http.request(method, cast.gateway() + path, **request)
            except httpx.HTTPError as exc:
                ledger.lost(f"hostile {what}", exc)
                continue
            ledger.answer(f"hostile {what}", response)
            if response.status_code != status and response.status_code < 500:
                ledger.wrong_answers.append(f"hostile {what}: {response.status_code}, not {status}")
            await asyncio.sleep(0.3)


async def _probe(cast: Cast, ledger: Ledger, until: float) -> None:
    """``/healthz`` of every gateway, five times a second; a restarting gateway's refusals not counted."""
    async with httpx.AsyncClient(timeout=10) as http:
        while time.monotonic() < until:
            for gateway in list(cast.gateways):
                started = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{gateway.url}/healthz")).status_code == 200:
                        ledger.healthz.append(time.perf_counter() - started)
            await asyncio.sleep(0.2)


async def _batch(cast: Cast, ledger: Ledger, at: float) -> None:
    """One ``voxserve batch`` run of 20 items, started part way in; every item must end ok."""
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    manifest = cast.directory / "batch.jsonl"
    rows = [{"id": f"b{i}", "text": SHORT_TEXTS[i % len(SHORT_TEXTS)], "format": "wav"} for i in range(20)]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    output = cast.directory / "batch-out"
    env = {**os.environ, "VOXSERVE_API_KEY": cast.keys["batcher"]}
    process = await asyncio.create_subprocess_exec(
        str(VOXSERVE),
        "batch",
        str(manifest),
        "--output",
        str(output),
        "--url",
        cast.gateways[0].url,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    code = await process.wait()
    results = output / "results.jsonl"
    ok = (
        sum(1 for line in results.read_text().splitlines() if json.loads(line)["status"] == "ok")
        if (results.exists())
        else 0
    )
    ledger.counts["batch items ok"] = ok
    if code != 0 or ok != len(rows):
        ledger.wrong_answers.append(f"voxserve batch: exit {code}, {ok} of {len(rows)} items ok")


# -- the faults ----------------------------------------------------------------------------------


async def _faults(cast: Cast, ledger: Ledger, started: float, until: float) -> None:
    """Each fault once per cycle, at the same point of every cycle; a run shorter than a cycle has
    each fault once, spread over it (the last one 10 s before the end, as in a whole cycle)."""
    cycle_seconds = min(CYCLE, (until - started - 10) / 0.85)

    async def at(share: float, what: str, fault: Callable[[], Awaitable[None]]) -> None:
        offset = share * cycle_seconds
        for cycle in itertools.count():
            moment = started + cycle * cycle_seconds + offset
            if moment > until - 10:
                return
            await asyncio.sleep(max(0.0, moment - time.monotonic()))
            index = len(ledger.faults)
            ledger.faults.append((what, time.monotonic(), math.inf))  # lasting, while it is done
            await fault()
            ledger.faults[index] = (what, ledger.faults[index][1], time.monotonic())

    async def kill_worker() -> None:
        cast.workers[1].kill()
        await asyncio.sleep(5)
        cast.workers[1] = _worker(cast.directory, "worker-b", cast.env)

    async def pause_redis() -> None:
        cast.redis.pause()
        await asyncio.sleep(REDIS_PAUSE)
        cast.redis.resume()

    async def restart_redis() -> None:
        await asyncio.to_thread(cast.redis.restart)

    async def kill_instance() -> None:
        url, process = cast.instances[1]
        process.kill()
        await asyncio.to_thread(process.wait)
        await asyncio.sleep(8)
        port = int(url.rsplit(":", 1)[1])
        command = instance_command("cosyvoice", port, capacity=4, seconds_per_char=0.01)
        revived = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.to_thread(wait_listening, url, revived)
        cast.instances[1] = (url, revived)

    async def fill_storage() -> None:
        filler = cast.directory / "storage" / "jobs" / "filler" / "fill.bin"
        filler.parent.mkdir(parents=True, exist_ok=True)
        with filler.open("wb") as sparse:
            sparse.truncate(DISK_LIMIT)
        await asyncio.sleep(8)
        filler.unlink()

    async def restart_gateway() -> None:
        gateway = cast.gateways[1]
        port = int(gateway.url.rsplit(":", 1)[1])
        cast.gateways.remove(gateway)
        await asyncio.to_thread(gateway.stop)
        replacement = await asyncio.to_thread(_gateway, cast.directory, GATEWAYS[1], cast.env, port)
        cast.gateways.append(replacement)

    await asyncio.gather(
        at(0.10, "worker B killed", kill_worker),
        at(0.25, f"Redis paused {REDIS_PAUSE:g} s", pause_redis),
        at(0.40, "Redis killed and restarted", restart_redis),
        at(0.52, "engine instance killed", kill_instance),
        at(0.68, "job storage full", fill_storage),
        at(0.84, "gateway B restarted", restart_gateway),
    )


# -- the run and its checks ----------------------------------------------------------------------


def _resources(pid: int) -> tuple[float, int]:
    """(RSS in MiB, open files) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return rss / 1024, len(os.listdir(f"/proc/{pid}/fd"))


async def _watch(cast: Cast, samples: dict[str, list[tuple[float, int]]], until: float) -> None:
    while time.monotonic() < until:
        for name, process in (("gateway A", cast.gateways[0]), ("worker A", cast.workers[0])):
            with contextlib.suppress(OSError, StopIteration):
                samples.setdefault(name, []).append(_resources(process.process.pid))
        await asyncio.sleep(5)


def _reference(url: str, token: str) -> bytes:
    """Eight seconds of real speech (hibari) to upload as a voice."""
    text = " ".join(SHORT_TEXTS[:3])
    answer = httpx.post(
        f"{url}/v1/audio/speech",
        json={"input": text, "response_format": "wav"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    answer.raise_for_status()
    return answer.content


@dataclass
class Check:
    invariant: str
    holds: bool
    measured: str


async def _load(cast: Cast, ledger: Ledger, minutes: float) -> dict[str, list[tuple[float, int]]]:
    started = time.monotonic()
    until = started + minutes * 60
    reference = await asyncio.to_thread(_reference, cast.gateways[0].url, cast.keys["batcher"])
    samples: dict[str, list[tuple[float, int]]] = {}
    await asyncio.gather(
        *(_streams(cast, ledger, until, "hibari") for _ in range(3)),
        _streams(cast, ledger, until, "cosy"),
        _jobs(cast, ledger, until, 1, "producer", idempotent=True),
        _jobs(cast, ledger, until, 2, "producer", idempotent=True),
        _jobs(cast, ledger, until, 3, "naked", idempotent=False),
        _jobs(cast, ledger, until, 4, "tight", idempotent=False),
        _uploads(cast, ledger, until, reference),
        _hostile(cast, ledger, until),
        _probe(cast, ledger, until),
        _batch(cast, ledger, started + 0.3 * minutes * 60),
        _faults(cast, ledger, started, until),
        _watch(cast, samples, until),
    )
    return samples


def _wait_jobs(http: httpx.Client, ledger: Ledger, timeout: float = 300) -> list[dict[str, Any]]:
    """Every stored job, once every accepted one has ended (or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while True:
        stored = _every_job(http)
        ended = {job["id"] for job in stored if job["status"] in ("succeeded", "failed", "canceled")}
        if ledger.jobs.keys() <= ended or time.monotonic() > deadline:
            return stored
        time.sleep(1)


def _every_job(http: httpx.Client) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    page = http.get("/v1/jobs", params={"limit": 200}).json()
    while True:
        jobs += page["data"]
        if not page["has_more"]:
            return jobs
        page = http.get("/v1/jobs", params={"limit": 200, "before": page["next"]}).json()


def _audio_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as audio:
        return float(audio.getnframes() / audio.getframerate())


def _job_checks(http: httpx.Client, ledger: Ledger) -> list[Check]:
    stored = _wait_jobs(http, ledger)
    succeeded = [job for job in stored if job["id"] in ledger.jobs and job["status"] == "succeeded"]
    wrong_length = []
    checked = random.sample(succeeded, min(40, len(succeeded)))
    for job in checked:
        seconds = _audio_seconds(http.get(f"/v1/jobs/{job['id']}/audio").content)
        least = ledger.jobs[job["id"]][2] / 25  # no voice says more than 25 characters a second
        if abs(seconds - job["progress"]["audio_seconds"]) > 0.1 or seconds < least:
            wrong_length.append(f"{job['id']}: {seconds:.1f} s")
    names = Counter(job["name"] for job in stored)
    twice = [name for name, count in names.items() if count > 1]
    refused = set(ledger.refused_names) & set(names)
    unfinished = [
        f"{job['id']} {job['status']} {job.get('error')}"
        for job in stored
        if job["id"] in ledger.jobs and job["status"] != "succeeded"
    ]
    finished = (
        f"{len(succeeded)} of {len(ledger.jobs)} succeeded; {len(twice)} stored twice; "
        f"{len(wrong_length)} of {len(checked)} checked have the wrong length"
        + "".join(f"; {line}" for line in unfinished[:3])
    )
    return [
        Check(
            "every accepted job finished exactly once, with audio of the right length",
            len(succeeded) == len(ledger.jobs) and not twice and not wrong_length,
            finished,
        ),
        Check(
            "no job reported refused exists",
            not refused,
            f"{len(ledger.refused_names)} refused, {len(refused)} of them stored",
        ),
    ]


def _usage_checks(http: httpx.Client, cast: Cast, ledger: Ledger) -> list[Check]:
    time.sleep(2)  # each gateway writes usage every second
    checks = []
    for key in ("streamer", "producer", "naked", "tight"):
        usage = http.get("/v1/usage", headers=cast.headers(key)).json()["usage"].get("characters", 0)
        low, high = ledger.accepted_chars[key], ledger.accepted_chars[key] + ledger.uncertain_chars[key]
        measured = f"usage {usage:.0f}; accepted {low}" + (
            f" (+{high - low} unanswered)" if high > low else ""
        )
        checks.append(Check(f"usage equals what was accepted ({key})", low <= usage <= high, measured))
    return checks


def _lease_check(cast: Cast) -> Check:
    redis = cast.redis.client()
    now = float(redis.time()[0])
    held = sum(int(redis.zcount(key, now, "+inf")) for key in redis.scan_iter(match="*streams/*"))
    return Check("stream slots back to zero", held == 0, f"{held} leases live after the load")


def _resource_checks(samples: dict[str, list[tuple[float, int]]]) -> list[Check]:
    checks = []
    for name, points in samples.items():
        warm = points[len(points) // 4 :] or points
        rss, files = [point[0] for point in warm], [point[1] for point in warm]
        measured = (
            f"RSS {rss[0]:.0f} → {rss[-1]:.0f} MiB (peak {max(rss):.0f}); open files {files[0]} → {files[-1]}"
        )
        flat = rss[-1] - min(rss) < 150 and files[-1] - min(files) < 50
        checks.append(Check(f"RSS and open files flat after warm-up ({name})", flat, measured))
    return checks


def _answer_checks(ledger: Ledger) -> list[Check]:
    errors = Counter(f"{status} {code}" for _, status, code, _ in ledger.server_errors)
    seen = ", ".join(f"{count}× {error}" for error, count in errors.most_common()) or "none"
    if ledger.outside_faults:
        seen += f"; outside a fault: {ledger.outside_faults[:3]}"
    latencies = sorted(ledger.healthz) or [float("nan")]
    p99 = latencies[int(len(latencies) * 0.99)]
    probes = (
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, {len(latencies)} probes"
    )
    return [
        Check("no 5xx but documented ones, and only while a fault lasts", not ledger.outside_faults, seen),
        Check(
            "every answer as documented (hostile requests, uploads, batch)",
            not ledger.wrong_answers,
            "; ".join(ledger.wrong_answers[:3]) or "all",
        ),
        Check("/healthz p99 under 100 ms", p99 < 0.1, probes),
    ]


def _checks(cast: Cast, ledger: Ledger, samples: dict[str, list[tuple[float, int]]]) -> list[Check]:
    with httpx.Client(base_url=cast.gateways[0].url, headers=cast.headers("ops"), timeout=60) as http:
        checks = _job_checks(http, ledger) + _usage_checks(http, cast, ledger)
    return [*checks, _lease_check(cast), *_resource_checks(samples), *_answer_checks(ledger)]


def run(minutes: float, directory: Path | None = None) -> tuple[list[Check], Ledger]:
    """The whole run: cast started, loaded and faulted for ``minutes``, checked, stopped."""
    directory = directory or Path(tempfile.mkdtemp(prefix="voxserve-chaos-"))
    redis = PrivateRedis(directory / "redis")
    redis.start()
    cast: Cast | None = None
    try:
        with engine_instances(2, capacity=4, seconds_per_char=0.01) as instances:
            config = _config(directory, redis.url, [url for url, _ in instances])
            env = {"VOXSERVE_CONFIG": str(config), **NO_CACHE}
            workers = [_worker(directory, n, env) for n in ("worker-a", "worker-b")]
            with ThreadPoolExecutor(len(GATEWAYS)) as starting:  # each loads for seconds: at once
                gateways = list(starting.map(lambda name: _gateway(directory, name, env), GATEWAYS))
            tokens = _keys(env, directory / "keys", gateways[0].url)
            cast = Cast(directory, redis, env, gateways, workers, list(instances), tokens)
            ledger = Ledger()
            samples = asyncio.run(_load(cast, ledger, minutes))
            return _checks(cast, ledger, samples), ledger
    finally:
        if cast is not None:
            with ThreadPoolExecutor(4) as stopping:  # each takes a moment to stop cleanly: at once
                list(stopping.map(Process.stop, [*cast.gateways, *cast.workers]))
            for _, instance in cast.instances:  # one was started again by the run: not the context's
                instance.kill()
                instance.wait()
        redis.stop()


def main(minutes: float) -> bool:
    """Run, print the table; whether every invariant held."""
    from rich.console import Console
    from rich.table import Table

    checks, ledger = run(minutes)
    table = Table(
        "invariant", "holds", "measured", title=f"Chaos: {minutes:g} minutes, {len(ledger.faults)} faults"
    )
    for check in checks:
        table.add_row(check.invariant, "yes" if check.holds else "[red]NO[/red]", check.measured)
    console = Console(width=160)
    console.print(table)
    faults = Counter(what for what, _, _ in ledger.faults)
    console.print("faults: " + ", ".join(f"{what} ×{n}" for what, n in faults.items()))
    console.print("answers: " + ", ".join(f"{what}: {n}" for what, n in sorted(ledger.counts.items())))
    return all(check.holds for check in checks)
