"""The Pipecat service on the speech stream, in a Pipecat pipeline, against a real ``voxserve serve``."""

from __future__ import annotations

import asyncio

import numpy as np
from pipecat.frames.frames import (
    ErrorFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.tests.utils import run_test

from voxserve.client.pipecat import VoxserveTTSService


def test_a_pipecat_pipeline_speaks_through_voxserve(server: str) -> None:
    tts = VoxserveTTSService(url=server.replace("http", "ws"), voice="af_heart", sample_rate=16000)
    down, _ = asyncio.run(
        run_test(tts, frames_to_send=[TTSSpeakFrame("Your table is booked. See you at eight!")])
    )
    kinds = [type(frame) for frame in down]
    assert ErrorFrame not in kinds, kinds
    assert kinds.index(TTSStartedFrame) < kinds.index(TTSAudioRawFrame) < kinds.index(TTSStoppedFrame), kinds
    audio = [frame for frame in down if isinstance(frame, TTSAudioRawFrame)]
    assert audio and {(frame.sample_rate, frame.num_channels) for frame in audio} == {(16000, 1)}
    samples = np.frombuffer(b"".join(frame.audio for frame in audio), dtype="<i2")
    assert 1.5 < samples.size / 16000 < 6, "two sentences of speech"
    assert np.abs(samples).max() > 3000, "speech, not silence"


def test_an_unknown_voice_is_an_error_frame(server: str) -> None:
    tts = VoxserveTTSService(url=server.replace("http", "ws"), voice="nobody", sample_rate=16000)
    down, up = asyncio.run(run_test(tts, frames_to_send=[TTSSpeakFrame("Hello.")]))
    errors = [frame for frame in [*down, *up] if isinstance(frame, ErrorFrame)]
    assert errors and "nobody" in errors[0].error
