"""GLM-TTS's batch command line: upstream's ``glmtts_inference.py``, one run for all of a request's segments.

Upstream's script takes only ``--data``, ``--exp_name``, ``--use_cache``,
``--use_phoneme`` and ``--sample_rate``. It runs in the checkout (``ckpt/``
and ``frontend/`` are read relative to its working directory), loads the
whole model (minutes, ~8 GB of GPU memory), reads ``examples/<data>.jsonl``
(one item a line: ``uttid``, ``prompt_text``, ``prompt_speech``,
``syn_text``), writes ``<script dir>/outputs/pretrain<exp_name>/<data>/<uttid>.wav``
for each item in order, logs an item that fails (``Error processing <uttid>:
...``) and goes on, and exits 0 all the same. It has no seed option: it
fixes one.

So a run here is a whole request or job (the renderer hands a batch engine
every segment at once): voxserve writes one jsonl of all the segments under
a name of its own, starts one process in the checkout, and takes each
segment's file as soon as it is final: when the next item's file appears,
or the run has ended. An item with no file failed; its error is the one the
script logged for it (out of GPU memory → ``EngineOverloaded``, so the job
is retried later). The jsonl and the outputs are removed when the run ends,
and the process (with what it started) is killed if the request goes away
or no segment comes within ``timeout``.

Each GPU in ``gpus`` runs one batch at a time (``CUDA_VISIBLE_DEVICES``);
batches wait for a free GPU in order, speech before jobs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path

from voxserve.engines.admission import AdmissionQueue
from voxserve.engines.base import EngineBase
from voxserve.engines.embedded import Waiting, wait_in_line
from voxserve.engines.glmtts.options import GlmTtsOptions
from voxserve.engines.process import Program
from voxserve.engines.prompts import Prompts
from voxserve.engines.remote import decoded_file, failure
from voxserve.errors import EngineError, EngineTimeout, EngineUnavailable
from voxserve.values import PCM, Capabilities, SegmentRequest

POLL_SECONDS = 0.2  # how often a run's output directory is looked at


class BatchRun:
    """One process of upstream's script over one jsonl, and the files it writes, in order."""

    def __init__(self, engine: GlmTtsBatchEngine, requests: Sequence[SegmentRequest], gpu: str) -> None:
        self.engine = engine
        self.requests = list(requests)
        self.gpu = gpu
        self.data = f"voxserve-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.jsonl = engine.workdir / "examples" / f"{self.data}.jsonl"
        self.folder = engine.outputs / self.data
        self.files = [self.folder / f"{index:06d}.wav" for index in range(len(self.requests))]
        self._program: Program | None = None
        self._exited: asyncio.Future[int] | None = None

    def _items(self) -> str:
        lines = []
        for index, request in enumerate(self.requests):
            prompt = self.engine.prompts.of(request)
            item = {
                "uttid": f"{index:06d}",
                "prompt_text": prompt.text,
                "prompt_speech": str(prompt.audio.resolve()),
                "syn_text": request.text,
            }
            lines.append(json.dumps(item, ensure_ascii=False) + "\n")
        return "".join(lines)

    def _write_jsonl(self) -> None:
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        self.jsonl.write_text(self._items(), encoding="utf-8")

    def arguments(self) -> list[str]:
        options = self.engine.options
        return [
            options.python,
            str(self.engine.script),
            f"--data={self.data}",
            f"--exp_name={options.exp_name}",
            f"--sample_rate={options.sample_rate}",
            *(["--use_phoneme"] if options.use_phoneme else []),
        ]

    async def start(self) -> None:
        await asyncio.to_thread(self._write_jsonl)
        environment = {**os.environ, "CUDA_VISIBLE_DEVICES": self.gpu} if self.gpu else None
        self._program = await Program.start(
            self.engine.name, self.arguments(), environment=environment, cwd=str(self.engine.workdir)
        )
        self._exited = asyncio.ensure_future(self._program.wait())

    async def close(self) -> None:
        """Kill the process if it still runs, and remove what this run wrote."""
        if self._program is not None:
            await self._program.stop()
        if self._exited is not None:
            self._exited.cancel()
        await asyncio.to_thread(self._remove)

    def _remove(self) -> None:
        self.jsonl.unlink(missing_ok=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    async def results(self) -> AsyncIterator[PCM]:
        """Each item's audio as soon as its file is final, in order."""
        rate = self.engine.capabilities.sample_rate
        for index, file in enumerate(self.files):
            await self._finished(index)
            audio = await decoded_file(file, self.engine.name, rate)
            await asyncio.to_thread(file.unlink)
            yield audio

    async def _finished(self, index: int) -> None:
        """Wait until item ``index`` is done (the next file is there, or the run ended); raise if it
        failed."""
        assert self._program is not None and self._exited is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.engine.options.timeout
        later = self.files[index + 1] if index + 1 < len(self.files) else None
        while True:
            ended = self._exited.done()
            if ended or (later is not None and await asyncio.to_thread(later.exists)):
                if await asyncio.to_thread(self.files[index].is_file):
                    return
                raise self._missing(index, ended)
            if loop.time() >= deadline:
                timeout = self.engine.options.timeout
                raise EngineTimeout(f"engine {self.engine.name!r} made no segment in {timeout:g} s; killed")
            await asyncio.wait([self._exited], timeout=POLL_SECONDS)

    def _missing(self, index: int, ended: bool) -> EngineError:
        """Why item ``index`` has no file: the run failed, or the script logged an error for it."""
        assert self._program is not None
        if ended and self._program.returncode:
            return self._program.error()
        logged = [
            line for line in self._program.stderr.splitlines() if f"Error processing {index:06d}:" in line
        ]
        where = f"failed on segment {index + 1} of {len(self.files)}"
        if logged:
            return failure(self.engine.name, where, logged[-1])
        return EngineUnavailable(
            f"engine {self.engine.name!r} {where}: it wrote no audio for it and logged no error"
        )


class GlmTtsBatchEngine(EngineBase):
    """Upstream's inference script in a GLM-TTS checkout, one run per batch, one batch per GPU."""

    def __init__(
        self,
        name: str,
        capabilities: Capabilities,
        prompts: Prompts,
        options: GlmTtsOptions,
        waiting: Waiting,
    ) -> None:
        super().__init__(name, capabilities)
        assert options.workdir is not None
        self.options = options
        self.prompts = prompts
        self.workdir = Path(os.path.abspath(options.workdir))
        self.script = Path(os.path.abspath(self.workdir / options.script))
        # where upstream writes: os.path.join(CURRENT_DIR, "outputs", f"pretrain{exp_name}", data)
        self.outputs = self.script.parent / "outputs" / f"pretrain{options.exp_name}"
        self._gpus = [str(gpu) for gpu in options.gpus] or [""]
        self._free = list(self._gpus)
        self._counts = {gpu: {"requests": 0, "errors": 0} for gpu in self._gpus}
        self._waiting = waiting
        self._line: AdmissionQueue[str] = AdmissionQueue(waiting.max_queue, self._release)

    async def load(self) -> None:
        """Check that the checkout can run (the model itself loads in each run), prepare the prompts."""
        needed = [self.script, self.workdir / "ckpt", self.workdir / "frontend"]
        missing = [str(path) for path in needed if not path.exists()]
        if missing:
            raise EngineUnavailable(
                f"engine {self.name!r}: workdir {self.workdir} is not a GLM-TTS checkout with its models "
                f"(missing: {', '.join(missing)})"
            )
        await self.prompts.load()
        await super().load()

    async def health(self, timeout: float = 2.0) -> str | None:
        if not self.script.is_file():
            return f"{self.script} is gone"
        return None if self._ready else "not loaded"

    def snapshot(self) -> list[dict[str, object]]:
        """Each GPU as an instance (``/v1/engines``, ``/metrics``): one batch at a time."""
        return [
            {
                "url": f"gpu:{gpu}" if gpu else "local",
                "role": "primary",
                "healthy": self._ready,
                "in_flight": 0 if gpu in self._free else 1,
                "limit": 1,
                "adaptive": False,
                "latency_ms_ewma": None,
                "latency_ms_p95": None,
                **self._counts[gpu],
            }
            for gpu in self._gpus
        ]

    def _take(self) -> str | None:
        return self._free.pop(0) if self._free else None

    def _release(self, gpu: str) -> None:
        self._free.append(gpu)
        self._line.dispatch()

    async def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        """One segment alone: a batch of one (a model load for a segment; batches are what this is for)."""
        async for audio in self.synthesize_batch([request]):
            yield audio

    async def synthesize_batch(self, requests: Sequence[SegmentRequest]) -> AsyncGenerator[PCM, None]:
        gpu = await wait_in_line(self._line, self._take, self._waiting, requests[0], self.name)
        run = BatchRun(self, requests, gpu)
        self._counts[gpu]["requests"] += 1
        try:
            await run.start()
            async for audio in run.results():
                yield audio
        except EngineError:
            self._counts[gpu]["errors"] += 1
            raise
        finally:
            await run.close()
            self._release(gpu)
