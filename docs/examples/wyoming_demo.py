"""voxserve's Wyoming server, through the wyoming library's own client."""

import asyncio

from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.tts import SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

CHUNKS = ["The kitchen", " lights are", " on. The front", " door is locked."]


async def main() -> None:
    async with AsyncTcpClient("127.0.0.1", 10200) as client:
        await client.write_event(Describe().event())
        program = Info.from_event(await client.read_event()).tts[0]
        streaming = program.supports_synthesize_streaming
        print(program.name, "streaming:", streaming, "voices:", len(program.voices))
        print([(voice.name, voice.languages) for voice in program.voices[:3]])
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="af_heart")).event())
        for chunk in CHUNKS:
            await client.write_event(SynthesizeChunk(text=chunk).event())
        await client.write_event(SynthesizeStop().event())
        seconds = 0.0
        while (event := await client.read_event()) is not None:
            if AudioChunk.is_type(event.type):
                seconds += AudioChunk.from_event(event).seconds
            elif AudioStart.is_type(event.type):
                print("audio-start", AudioStart.from_event(event).rate, "Hz")
            else:
                print(event.type, f"({seconds:.2f} s of audio so far)")
            if event.type == "synthesize-stopped":
                break


asyncio.run(main())
