"""A stand-in for Coqui TTS's demo server (``tts-server``) running XTTS v2, as it answers.

Follows idiap/coqui-ai-TTS@7cde79ec2d7c9b0210dbae29da40a1ea1bfe1089, ``TTS/server/server.py``
(the maintained fork; the original coqui-ai/TTS server cannot load XTTS at all): ``GET|POST
/api/tts`` reads ``text``, ``speaker_id`` and ``language_id`` from headers or the query/form
(never a JSON body); blank text is 400 ``{"error": "Text parameter is required"}``; a failure in
synthesis (an unknown speaker, a language XTTS lacks) is 500 ``{"error": "TTS synthesis failed:
..."}``; the answer is a WAV file at the model's rate (24 kHz for XTTS v2). Port 5002.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from harness.servers.engines import Behaviour, tone
from voxserve.audio.pcm import wav_bytes

RATE = 24000
SPEAKERS = ("Claribel Dervla", "Craig Gutsy", "Ana Florence")
LANGUAGES = (
    "en",
    "es",
    "fr",
    "de",
    "it",
    "pt",
    "pl",
    "tr",
    "ru",
    "nl",
    "cs",
    "ar",
    "zh-cn",
    "ja",
    "hu",
    "ko",
    "hi",
)


def coqui_app(behaviour: Behaviour) -> FastAPI:
    app = FastAPI()

    @app.api_route("/api/tts", methods=["GET", "POST"])
    async def tts(request: Request) -> Response:
        values = {**request.query_params, **(await request.form())}

        def value(header: str, name: str, default: str = "") -> str:
            return request.headers.get(header) or str(values.get(name, default))

        text = value("text", "text")
        speaker, language = value("speaker-id", "speaker_id"), value("language-id", "language_id", "en")
        behaviour.requests.append({"text": text, "speaker_id": speaker, "language_id": language})
        if not text.strip():
            return JSONResponse({"error": "Text parameter is required"}, status_code=400)
        if speaker not in SPEAKERS:
            return JSONResponse({"error": f"TTS synthesis failed: '{speaker}'"}, status_code=500)
        if language not in LANGUAGES:
            supported = f"Supported languages are {list(LANGUAGES)}"
            message = f"TTS synthesis failed:  ❗ Language {language} is not supported. {supported}"
            return JSONResponse({"error": message}, status_code=500)
        return Response(wav_bytes(tone(text, RATE), RATE), media_type="audio/wav")

    return app
