"""Speak an LLM's answer as it streams: each sentence's audio starts as soon as it is complete."""

import asyncio
import json
import time

import websockets

DELTAS = ["Sure", "! The", " nearest", " pharmacy", " is on", " Elm Street", ". It", " closes", " at nine."]


async def main() -> None:
    async with websockets.connect("ws://127.0.0.1:8000/v1/audio/speech/stream") as socket:
        await socket.send(json.dumps({"type": "options", "voice": "af_heart"}))
        started = time.perf_counter()
        for delta in DELTAS:  # as the LLM writes them
            await socket.send(json.dumps({"type": "text", "text": delta}))
        await socket.send(json.dumps({"type": "end"}))
        pcm = bytearray()  # 16-bit mono at 24,000 Hz: play it as it comes
        async for message in socket:
            if isinstance(message, bytes):
                pcm += message
                continue
            event = json.loads(message)
            if event["type"] == "sentence.end":
                words = [w["word"] for s in event["segments"] for w in s.get("words", [])]
                event = {"type": "sentence.end", "index": event["index"], "words": words}
            print(f"{time.perf_counter() - started:5.2f}s {json.dumps(event)}")
        print(f"{len(pcm) / 48000:.2f} s of audio")


asyncio.run(main())
