"""GLM-TTS's long-running server: upstream's Gradio app (``tools/gradio_app.py``), through ``gradio_client``.

The model loads in that server on its first call (minutes), and again whenever a call
asks for another ``sample_rate`` (upstream's ``get_models``), so a segment then costs only
its inference. Each instance is warmed with one short call once its app answers, and stays
out of rotation (the engine "loading" in ``/readyz``) until that call has answered; an app
that went away is warmed again when it is back. Two engines at different rates on one app
are refused when settings load (:func:`server_setting`).
Each segment is one call of the app's ``run_inference(prompt_text,
prompt_audio_path, input_text, seed, sample_rate, use_cache)`` (its API name
``/run_inference``): the prompt audio goes up as a file, the answer is an
audio file that is fetched (bounded by ``max_answer_bytes``) and decoded at
the rate it declares. The seed is honoured (upstream's default, 42, when the
request gives none), so the same request gives the same audio.

``gradio_client`` is synchronous: calls are submitted to its own threads and
awaited, never run on the event loop. The app's queue runs one call at a
time by default, so each instance's limit is 1 unless ``max_concurrency``
says the server was started with more. A call that is abandoned (timeout,
client gone) is cancelled in the app's queue; one already running on the GPU
runs to its end there (Gradio cannot stop it).

Failures: a refused connection or an app that is not GLM-TTS's →
``EngineUnavailable``; the app's own error (``Inference failed: ...``, which
upstream raises for whatever went wrong, the input included) →
``EngineFailed`` (the pool tells the input's fault from the app's), or
``EngineOverloaded`` when it ran out of GPU memory; no answer within
``read_timeout`` → ``EngineTimeout``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from voxserve.engines.base import EngineBase
from voxserve.engines.glmtts.options import GlmTtsOptions
from voxserve.engines.prompts import Prompts
from voxserve.engines.remote import decoded_file, failure, server_alive
from voxserve.errors import EngineError, EngineTimeout, EngineUnavailable
from voxserve.values import PCM, Capabilities, SegmentRequest

log = logging.getLogger(__name__)

#: What upstream's app uses when the Seed box is left as it is.
DEFAULT_SEED = 42
CONNECT_TIMEOUT = 10.0
#: What the warm-up call says, in the engine's first language that has one.
WARM_UP_TEXTS = {"zh": "你好。", "en": "Hello."}


def server_setting(options: GlmTtsOptions) -> tuple[str, object] | None:
    """What one app keeps for all its callers: the rate its model is loaded at (it reloads on a change)."""
    return ("sample_rate", options.sample_rate) if options.interface == "gradio" else None


def _connect(url: str) -> Any:
    """A ``gradio_client.Client`` (blocking: it reads the app's config) that sends no telemetry.

    Imported here, not at the top: it takes half a second, and only GLM-TTS's app needs it. Its
    client would otherwise tell Hugging Face about every server it connects to.
    """
    from gradio_client import Client

    class QuietClient(Client):  # type: ignore[misc]  # gradio_client has no type hints
        def _telemetry_thread(self) -> None:
            return None

    return QuietClient(url, verbose=False, download_files=False, httpx_kwargs={"timeout": CONNECT_TIMEOUT})


class GlmTtsGradioEngine(EngineBase):
    """One GLM-TTS Gradio server (an instance of a pool)."""

    def __init__(
        self,
        name: str,
        http: httpx.AsyncClient,
        capabilities: Capabilities,
        prompts: Prompts,
        *,
        api_name: str,
        use_cache: bool,
        max_answer_bytes: int,
        timeout: float,
    ) -> None:
        super().__init__(name, capabilities)
        self._http = http
        self._prompts = prompts
        self._api_name = api_name
        self._use_cache = use_cache
        self._max_answer_bytes = max_answer_bytes
        self._timeout = timeout
        self._gradio: Any = None  # a gradio_client.Client once connected
        self._connecting = asyncio.Lock()
        self._warm = False
        self._warming: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return str(self._http.base_url)

    async def load(self) -> None:
        """Prepare the prompts; the server may come up later (health checks let it in then)."""
        await self._prompts.load()
        await super().load()

    @property
    def ready(self) -> bool:
        """Loaded here and warm there: the app has answered a call at this engine's rate."""
        return super().ready and self._warm

    async def health(self, timeout: float = 2.0) -> str | None:
        """Alive if the app answers and is a Gradio app; its client is made here, so that the first
        request after start does not wait for it. An app not yet warm is warmed in the background."""
        down = await server_alive(self._http, timeout)
        if down is not None:
            self._warm = False  # a restarted app loads its model again
            return down
        try:
            await self._client()
        except EngineUnavailable as exc:
            return exc.message
        if not self._warm and (self._warming is None or self._warming.done()):
            self._warming = asyncio.create_task(self._warm_up(), name=f"warm {self.name} at {self.url}")
        if self._warming is not None and not self._warming.done():
            await asyncio.wait({self._warming}, timeout=timeout)  # a quick warm-up is seen by this check
        return None

    async def _warm_up(self) -> None:
        """One short call, so the app loads its model at this engine's rate before any request waits."""
        caps = self.capabilities
        language = next((code for code in WARM_UP_TEXTS if code in caps.languages), "en")
        request = SegmentRequest(WARM_UP_TEXTS[language], language, caps.default_voice, seed=DEFAULT_SEED)
        started = asyncio.get_running_loop().time()
        try:
            async for _ in self.synthesize(request):
                pass
        except EngineError as exc:
            log.warning(
                "engine %r at %s is not warm yet (tried again at the next check): %s",
                self.name,
                self.url,
                exc,
            )
            return
        self._warm = True
        seconds = asyncio.get_running_loop().time() - started
        log.info("engine %r at %s is warm (its first call took %.1f s)", self.name, self.url, seconds)

    async def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        await super().close()
        if self._gradio is not None:
            await asyncio.to_thread(self._gradio.close)
            self._gradio = None
        await self._http.aclose()

    async def _client(self) -> Any:
        """The Gradio client, made on first use (it reads the app's config: blocking, so in a thread)."""
        async with self._connecting:
            if self._gradio is None:
                try:
                    self._gradio = await asyncio.to_thread(_connect, self.url)
                except Exception as exc:  # gradio_client raises what httpx and its parsing raise
                    raise EngineUnavailable(
                        f"engine {self.name!r}: no Gradio app answers at {self.url} ({exc!r})"
                    ) from exc
            return self._gradio

    def _forget(self, client: Any) -> None:
        """A client whose server went away is made anew next time (the app may have restarted)."""
        if self._gradio is client:
            self._gradio = None
            client.executor.submit(client.close)

    async def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        from gradio_client import handle_file  # imported by _connect already

        client = await self._client()
        prompt = self._prompts.of(request)
        arguments = (
            prompt.text,
            handle_file(str(prompt.audio)),
            request.text,
            request.seed if request.seed is not None else DEFAULT_SEED,
            self.capabilities.sample_rate,
            self._use_cache,
        )
        try:
            job = client.submit(*arguments, api_name=self._api_name)
        except ValueError as exc:  # the app has no such endpoint: not GLM-TTS's, or another version
            raise EngineUnavailable(f"engine {self.name!r} at {self.url}: {exc}") from exc
        try:
            answer = await asyncio.wait_for(asyncio.wrap_future(job.future), self._timeout)
        except asyncio.CancelledError:
            self._abandon(client, job)
            raise
        except Exception as exc:
            self._abandon(client, job)
            raise self._translated(exc, client) from exc
        yield await self._fetch(answer)

    @staticmethod
    def _abandon(client: Any, job: Any) -> None:
        """Take a call nobody waits for out of the app's queue (one already on the GPU runs on there)."""
        if not job.done():
            client.executor.submit(job.cancel)  # it posts to the app: not on the event loop

    def _translated(self, exc: Exception, client: Any) -> Exception:
        from gradio_client.exceptions import AppError

        if isinstance(exc, TimeoutError):
            return EngineTimeout(f"engine {self.name!r} at {self.url} did not answer in {self._timeout:g} s")
        if isinstance(exc, AppError):
            return failure(self.name, f"at {self.url} failed", str(exc), answered=True)
        self._forget(client)
        return EngineUnavailable(f"engine {self.name!r} at {self.url} failed: {exc!r}")

    async def _fetch(self, answer: Any) -> PCM:
        """The answer's audio file, fetched from the app (bounded) and decoded."""
        url = answer.get("url") if isinstance(answer, dict) else None
        if not url:
            raise EngineUnavailable(f"engine {self.name!r} at {self.url} answered no audio file: {answer!r}")
        for attempt in (1, 2):
            try:
                data = await self._download(url)
                break
            except httpx.HTTPError as exc:
                # the file stays on the app's disk: a connection cut under load is fetched once more
                if attempt == 1 and isinstance(exc, httpx.TransportError):
                    continue
                raise EngineUnavailable(
                    f"engine {self.name!r}: its audio could not be fetched ({exc!r})"
                ) from exc
        return await decoded_file(data, self.name, self.capabilities.sample_rate)

    async def _download(self, url: str) -> bytes:
        """One GET of an answer's file, at most ``max_answer_bytes``."""
        data = bytearray()
        async with self._http.stream("GET", url) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > self._max_answer_bytes:
                    raise EngineUnavailable(
                        f"engine {self.name!r} answered more than {self._max_answer_bytes} bytes"
                    )
        return bytes(data)
