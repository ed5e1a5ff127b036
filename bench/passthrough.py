"""The least a Python proxy can do: uvicorn, FastAPI and httpx passing a stream through.

``python -m bench.passthrough UPSTREAM PORT`` serves ``POST /v1/audio/speech``
by forwarding its ``input`` to a CosyVoice ``/inference_sft`` and streaming
the answer back untouched: no planning, checks, pool or encoding. The proxy
benchmark runs it beside voxserve to show what the Python HTTP stack itself
costs, and so how much of voxserve's added latency is its own work.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse


def create_app(upstream: str) -> FastAPI:
    app = FastAPI()
    client = httpx.AsyncClient(base_url=upstream, timeout=60)

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> StreamingResponse:
        body = await request.json()
        form = {"tts_text": body["input"], "spk_id": "中文女"}
        response = await client.send(client.build_request("POST", "/inference_sft", data=form), stream=True)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                await response.aclose()

        return StreamingResponse(relay(), media_type="audio/pcm")

    return app


if __name__ == "__main__":
    uvicorn.run(create_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
