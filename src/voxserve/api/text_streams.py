"""Speech for text that arrives in pieces: an LLM's answer spoken sentence by sentence while it is
still being written. The WebSocket ``/v1/audio/speech/stream`` (:mod:`voxserve.api.speech_socket`)
and the Wyoming server's streaming synthesis (:mod:`voxserve.api.wyoming`) are doors on it.

Each complete sentence (:func:`voxserve.text.complete_sentences`) becomes one speech request on
the one pipeline: planned, moderated and charged its characters like any other, rendered in order
by one task per stream. The stream itself is the request: it is counted once against the key's
requests per minute and holds one of its concurrent streams while it is open. A stream keeps the
sample rate of its first sentence, so its audio joins seamlessly whichever engine speaks a later
sentence. :meth:`TextStream.cancel` (a user who barges in) drops the text not yet spoken and stops
the sentence being rendered: the engine finishes at most the segment it is making, and its slot is
free at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

from voxserve.api.admission import admitted_plan
from voxserve.api.streaming import log_line
from voxserve.errors import InvalidRequest, PayloadTooLarge, VoxserveError
from voxserve.pipeline import Plan, SpeechRequest, Stats
from voxserve.rendering import SegmentTime
from voxserve.request import SpeechOptions
from voxserve.security.guard import Principal
from voxserve.security.quotas import Admitted
from voxserve.services import Services
from voxserve.text import complete_sentences, is_speakable

log = logging.getLogger(__name__)

#: Text with no sentence end for this long is spoken up to its last clause or word anyway.
LONGEST_SENTENCE = 1000
SSML_END = "</speak>"


class Listener(Protocol):
    """Where a text stream's audio goes, sentence by sentence."""

    async def begin(self, index: int, text: str, plan: Plan) -> None:
        """A sentence's audio starts (its format and rate are the plan's)."""

    async def audio(self, chunk: bytes) -> None: ...

    async def end(self, index: int, segments: list[SegmentTime]) -> None:
        """A sentence's audio ended; its segments' times are from the start of the stream's audio."""

    async def failed(self, error: VoxserveError) -> None:
        """A sentence was refused or failed; the stream goes on with the next."""

    async def flushed(self, last: bool) -> None:
        """Everything sent before a flush has been spoken (``last``: the stream ends here)."""


@dataclass(frozen=True)
class _Flush:
    last: bool  # the stream ends after it


class TextStream:
    """One stream of text in, audio out, for one principal with one set of speech options."""

    def __init__(
        self,
        services: Services,
        principal: Principal,
        options: SpeechOptions,
        listener: Listener,
        words: bool = False,
    ) -> None:
        self.services = services
        self.principal = principal
        self.options = options
        self.listener = listener
        self.words = words  # the listener wants word times
        self.settings = services.settings.text_streams
        self.id = uuid.uuid4().hex[:16]
        self.opened = time.monotonic()
        self.audio_seconds = 0.0
        self.chars = 0
        self._pending = ""
        self._queue: asyncio.Queue[str | _Flush] = asyncio.Queue()
        self._queued_chars = 0
        self._index = 0
        self._admitted: Admitted | None = None
        self._speaker: asyncio.Task[None] | None = None
        self._speaking = False
        self._leading = False  # the next sentence is one the listener waits for: nothing plays before it
        self._written = False  # text has come: the options are fixed
        self._ending = False  # the client ended the stream: no more text
        self.broken: Exception | None = None  # why the stream ended early (its listener's connection)
        self.ended = asyncio.Event()

    async def open(self) -> None:
        """Admit the stream: one request, and one of the principal's concurrent streams until it closes."""
        self._admitted = await self.services.guard.admit(self.principal, stream=True)
        self._speaker = asyncio.create_task(self._speak_all(), name=f"text stream {self.id}")

    def configure(self, options: SpeechOptions) -> None:
        """New speech options, before any text: a stream speaks with one voice, at one rate."""
        if self._written:
            raise InvalidRequest("options come first, before any text", param="type")
        self.options = options

    @property
    def idle(self) -> bool:
        """Nothing to speak and nothing being spoken (an unfinished sentence aside)."""
        return not self._speaking and self._queue.empty()

    def flush_if_waiting(self) -> bool:
        """Speak an unfinished sentence the client has left waiting (it went quiet); whether there
        was one."""
        if not self._pending.strip() or self._ending:
            return False
        self.flush()
        return True

    @property
    def expired(self) -> bool:
        return time.monotonic() - self.opened > self.settings.max_seconds

    async def write(self, text: str) -> None:
        """More text: each sentence it completes is queued to be spoken. An SSML document waits
        until it is closed and is spoken whole (it is one request's markup, not sentences)."""
        self._check_open()
        limit = self.services.settings.max_input_chars
        if len(text) > limit:
            raise PayloadTooLarge(
                f"a text message is {len(text)} characters; the limit is {limit} (max_input_chars)",
                param="text",
            )
        waiting = self._queued_chars + len(self._pending) + len(text)
        if waiting > self.settings.max_queued_chars:
            raise PayloadTooLarge(
                f"{waiting} characters would wait to be spoken; a stream holds at most "
                f"{self.settings.max_queued_chars} (text_streams.max_queued_chars): send more once "
                "audio has come back",
                param="text",
            )
        self._written = self._written or bool(text.strip())
        pending = self._pending + text
        while (start := pending.find("<speak")) >= 0:
            end = pending.find(SSML_END, start)
            if end < 0:
                break
            await self._split(pending[:start])
            rest, self._pending = self._pending.strip(), ""  # the document starts a new sentence
            for piece in (rest, pending[start : end + len(SSML_END)]):
                self._put(piece)
            pending = pending[end + len(SSML_END) :]
        if "<speak" in pending:
            self._pending = pending
        else:
            self._pending = ""
            await self._split(pending)

    async def _split(self, text: str) -> None:
        done, self._pending = await asyncio.to_thread(complete_sentences, text, LONGEST_SENTENCE)
        for sentence in done:
            self._put(sentence)

    def flush(self, last: bool = False) -> None:
        """Speak what is pending even if its sentence is unfinished; then tell the listener
        (``last``: and end the stream)."""
        self._check_open()
        self._ending = last
        rest, self._pending = self._pending.strip(), ""
        if rest:
            self._put(rest)
        self._queue.put_nowait(_Flush(last))

    def _check_open(self) -> None:
        if self._ending:
            raise InvalidRequest("the stream was ended (end); open a new one for more", param="type")

    async def cancel(self) -> None:
        """Drop the text not yet spoken and stop the sentence being rendered (the engine's slot is
        freed at once; it finishes at most the segment it was making)."""
        self._pending = ""
        self._queued_chars = 0
        self._queue = asyncio.Queue()
        await self._stop_speaking()
        self._speaker = asyncio.create_task(self._speak_all(), name=f"text stream {self.id}")
        if self._ending:  # an end sent before the cancel still ends the stream
            self._queue.put_nowait(_Flush(last=True))

    async def close(self) -> None:
        """Stop whatever is left and settle the stream (its slot back, its audio counted)."""
        await self._stop_speaking()
        if self._admitted is not None:
            admitted, self._admitted = self._admitted, None
            elapsed = time.monotonic() - self.opened
            self.services.guard.settle(self.principal, admitted, self.audio_seconds, elapsed)

    async def _stop_speaking(self) -> None:
        speaker, self._speaker = self._speaker, None
        if speaker is None:
            return
        speaker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await speaker

    def _put(self, sentence: str) -> None:
        if sentence and is_speakable(sentence):  # a lone "..." between sentences says nothing
            if not self._speaking and self._queue.empty():
                self._leading = True
            self._queued_chars += len(sentence)
            self._queue.put_nowait(sentence)

    async def _speak_all(self) -> None:
        """The queue, in order, until the stream ends; if the listener's connection breaks, the
        stream ends with it (``broken``), and whoever waits for its end is woken."""
        queue = self._queue
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Flush):
                    await self.listener.flushed(item.last)
                    if item.last:
                        self.ended.set()
                        return
                    continue
                self._queued_chars -= len(item)
                self._speaking = True
                try:
                    await self._speak(item)
                except VoxserveError as exc:
                    if exc.param == "input":  # the sentence is the stream's text
                        exc.param = "text"
                    await self.listener.failed(exc)
                finally:
                    self._speaking = False
        except Exception as exc:
            log.info("text stream %s ended: %s: %s", self.id, type(exc).__name__, exc)
            self.broken = exc
            self.ended.set()

    async def _speak(self, sentence: str) -> None:
        """One sentence, as a speech request of its own on the one pipeline."""
        request = SpeechRequest(input=sentence, **self.options.model_dump())
        # a sentence may start with a short piece only when nothing plays before it
        leading, self._leading = self._leading, False
        plan, _, caller = await admitted_plan(self.services, self.principal, request, leading, sentence=True)
        if self.options.sample_rate is None:  # the stream keeps its first sentence's rate
            self.options = self.options.model_copy(update={"sample_rate": plan.output_rate})
        index, self._index = self._index, self._index + 1
        stats = Stats(chars=plan.chars, words=self.words)
        offset = self.audio_seconds
        outcome = "failed"
        try:
            await self.listener.begin(index, sentence, plan)
            async for chunk in self.services.pipeline.encode(plan, stats):
                await self.listener.audio(chunk)
            outcome = "ok"
        except asyncio.CancelledError:
            outcome, stats.client_left = "canceled", True  # its characters stay charged
            raise
        finally:
            self.audio_seconds += stats.audio_seconds
            self.chars += plan.chars
            caller.ended(stats)
            log_line(self.id, plan, stats, outcome, caller)
        await self.listener.end(index, [segment.shifted(offset) for segment in stats.timeline])
