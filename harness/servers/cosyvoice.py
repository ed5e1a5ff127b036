"""A stand-in for CosyVoice's FastAPI runtime as each generation really runs it, failures included.

Follows FunAudioLLM/CosyVoice@ace7c47f41bbd303aa6bf1ea80e6f9fbd595cd40:

- ``runtime/python/fastapi/server.py``: the five routes (GET and POST, form
  fields), ``load_wav(prompt_wav.file, 16000)`` run in the route itself (a
  file it cannot read, or one below 16 kHz, is a 500 before any byte), then
  the model's generator inside ``StreamingResponse``: everything the model
  does runs after the 200 and its headers, so its errors stop the body short
  (uvicorn closes the connection mid-answer). Raw int16 samples, no header,
  a piece per sentence. The server passes the loaded tensor where the front
  end wants a file ("TypeError: Invalid file: tensor", upstream issue
  #1794): at this commit no clone works; ``fixed_clone`` is the server with
  the documented one-line fix (the upload saved to a file, its path passed).
- ``cosyvoice/cli/cosyvoice.py``: ``AutoModel`` picks CosyVoice, CosyVoice2
  or CosyVoice3 by the model's yaml; ``sample_rate`` 22050 for the first,
  24000 for 2 and 3; ``inference_instruct`` asserts the class is CosyVoice;
  CosyVoice has no ``inference_instruct2`` (an ``AttributeError`` in the
  route: a 500).
- ``cosyvoice/cli/frontend.py``: ``spk2info[spk_id]`` (``KeyError`` for a
  speaker the model lacks; CosyVoice2 and 3 ship none); ``text_normalize``
  splits text into sentences, and skips that for text with ``<|…|>`` tokens.
- ``cosyvoice/llm/llm.py``: CosyVoice3's LLM asserts ``<|endofprompt|>`` in
  the prompt text plus text.

The audio is a tone whose length follows the text (:func:`harness.servers.engines.tone`);
:class:`~harness.servers.engines.Behaviour` makes it slow, faulty or out of memory under load.
"""

from __future__ import annotations

import asyncio
import io
import re
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, File, Form, Response, UploadFile
from fastapi.responses import StreamingResponse

from harness.servers.engines import Behaviour, generate, tone, unavailable
from voxserve.audio.pcm import wav_bytes

END_OF_PROMPT = "<|endofprompt|>"
#: CosyVoice-300M-SFT's ``spk2info``.
PRESET_SPEAKERS = ("中文女", "中文男", "日语男", "粤语女", "英文女", "英文男", "韩语女")


@dataclass(frozen=True)
class Model:
    """What ``AutoModel(model_dir=...)`` loaded: its generation and what that allows."""

    generation: int = 1
    instruct: bool = False  # CosyVoice-300M-Instruct
    fixed_clone: bool = False  # the server with upstream issue #1794's fix applied

    @property
    def sample_rate(self) -> int:
        return 22050 if self.generation == 1 else 24000

    @property
    def speakers(self) -> tuple[str, ...]:
        return PRESET_SPEAKERS if self.generation == 1 else ()

    def sentences(self, text: str) -> list[str]:
        """``frontend.text_normalize(text, split=True)``: sentences, or the text whole when it has tokens."""
        if "<|" in text and "|>" in text:
            return [text]
        return [piece for piece in re.findall(r"[^。！？!?.]+[。！？!?.]?", text.strip()) if piece.strip()]

    def llm(self, text: str, prompt_text: str) -> None:
        """``CosyVoice3LM.inference``'s assertion on the prompt text and text together."""
        if self.generation == 3 and END_OF_PROMPT not in prompt_text + text:
            raise AssertionError(
                "<|endofprompt|> not detected in CosyVoice3 text or prompt_text, check your input!"
            )

    def speaker(self, spk_id: str) -> None:
        if spk_id not in self.speakers:
            raise KeyError(spk_id)  # frontend.spk2info[spk_id]

    def prompt(self) -> None:
        """``frontend_zero_shot`` → ``load_wav(prompt_wav, 24000)`` on what the route passed."""
        if not self.fixed_clone:
            raise TypeError("Invalid file: tensor([[ 0.0001,  0.0002, ...]])")


async def model_output(
    behaviour: Behaviour, model: Model, text: str, check: Callable[[str], None]
) -> AsyncIterator[bytes]:
    """``generate_data(model_output)``: each sentence checked as the model meets it, then spoken."""
    for sentence in model.sentences(text):
        check(sentence)
        async for chunk in generate(behaviour, sentence, model.sample_rate):
            yield chunk


def load_wav(data: bytes, target_rate: int = 16000) -> dict[str, Any]:
    """``load_wav(prompt_wav.file, 16000)``: torchaudio's read, and its assertion on the rate."""
    with wave.open(io.BytesIO(data), "rb") as audio:
        rate, frames, channels = audio.getframerate(), audio.getnframes(), audio.getnchannels()
    if rate != target_rate:
        assert rate >= target_rate, f"wav sample rate {rate} must be greater than {target_rate}"
    return {"prompt_rate": rate, "prompt_channels": channels, "prompt_seconds": frames / rate}


def cosyvoice_app(behaviour: Behaviour, model: Model | None = None) -> FastAPI:  # noqa: C901 (server.py's routes)
    """The runtime serving ``model`` (CosyVoice-300M-SFT unless told), and the ``/tts`` form wrapper
    around CosyVoice3."""
    model = model or Model()
    app = FastAPI()
    both = ["GET", "POST"]  # upstream binds each route to both

    def stream(text: str, check: Callable[[str], None], **fields: Any) -> Response:
        behaviour.requests.append({"tts_text": text, **fields})
        if not behaviour.up:
            return unavailable()
        return StreamingResponse(model_output(behaviour, model, text, check))

    @app.api_route("/inference_sft", methods=both)
    async def inference_sft(tts_text: str = Form(), spk_id: str = Form()) -> Response:
        def check(sentence: str) -> None:
            model.speaker(spk_id)
            model.llm(sentence, "")

        return stream(tts_text, check, path="/inference_sft", spk_id=spk_id)

    @app.api_route("/inference_zero_shot", methods=both)
    async def inference_zero_shot(
        tts_text: str = Form(), prompt_text: str = Form(), prompt_wav: UploadFile = File()
    ) -> Response:
        fields = load_wav(await prompt_wav.read())

        def check(sentence: str) -> None:
            model.prompt()
            model.llm(sentence, prompt_text)

        return stream(tts_text, check, path="/inference_zero_shot", prompt_text=prompt_text, **fields)

    @app.api_route("/inference_cross_lingual", methods=both)
    async def inference_cross_lingual(tts_text: str = Form(), prompt_wav: UploadFile = File()) -> Response:
        fields = load_wav(await prompt_wav.read())

        def check(sentence: str) -> None:
            model.prompt()
            model.llm(sentence, "")  # cross-lingual drops the prompt text from the LLM's input

        return stream(tts_text, check, path="/inference_cross_lingual", **fields)

    @app.api_route("/inference_instruct", methods=both)
    async def inference_instruct(
        tts_text: str = Form(), spk_id: str = Form(), instruct_text: str = Form()
    ) -> Response:
        def check(sentence: str) -> None:
            if model.generation != 1:
                raise AssertionError("inference_instruct is only implemented for CosyVoice!")
            model.speaker(spk_id)

        fields = {"spk_id": spk_id, "instruct_text": instruct_text}
        return stream(tts_text, check, path="/inference_instruct", **fields)

    @app.api_route("/inference_instruct2", methods=both)
    async def inference_instruct2(
        tts_text: str = Form(), instruct_text: str = Form(), prompt_wav: UploadFile = File()
    ) -> Response:
        fields = load_wav(await prompt_wav.read())
        if model.generation == 1:
            raise AttributeError("'CosyVoice' object has no attribute 'inference_instruct2'")

        def check(sentence: str) -> None:
            model.prompt()
            model.llm(sentence, instruct_text)

        return stream(tts_text, check, path="/inference_instruct2", instruct_text=instruct_text, **fields)

    @app.post("/tts")
    async def tts(
        text: str = Form(),
        audio_path: str | None = Form(None),
        seed: int | None = Form(None),
        task_id: str | None = Form(None),
    ) -> Response:
        """Not upstream's: the form wrapper deployments put around CosyVoice3, answering a whole WAV."""
        behaviour.requests.append({"path": "/tts", "text": text, "seed": seed, "audio_path": audio_path})
        if not behaviour.up:
            return unavailable()
        await asyncio.sleep(behaviour.seconds_per_char * len(text))
        return Response(wav_bytes(tone(text, model.sample_rate), model.sample_rate), media_type="audio/wav")

    return app
