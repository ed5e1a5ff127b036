"""A stand-in speech program for the ``command`` kind: text on stdin, a WAV tone on stdout.

``speech_cli.py RATE [ARGS...]`` writes 0.05 s of a 220 Hz tone per character at RATE and
appends its arguments, text and pid to ``$RECORD``. Words in the text make it misbehave as
real programs do: ``fail`` (exit 1 with a message), ``oom`` (CUDA out of memory), ``hang``
(sleeps a minute), ``flood`` (10 MB of junk on stdout), ``silent`` (exit 0, nothing written),
``junk`` (text, not audio).
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import time
import wave


def main() -> None:
    text = sys.stdin.read()
    with open(os.environ["RECORD"], "a") as record:
        record.write(json.dumps({"argv": sys.argv[1:], "text": text, "pid": os.getpid()}) + "\n")
    if "fail" in text:
        sys.exit("bad things happened\nerror: the model broke")
    if "oom" in text:
        sys.exit("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")
    if "hang" in text:
        time.sleep(60)
    if "flood" in text:
        sys.stdout.buffer.write(b"x" * 10_000_000)
        return
    if "silent" in text:
        return
    if "junk" in text:
        sys.stdout.write("usage: speech_cli RATE\n" * 20)
        return
    rate = int(sys.argv[1])
    samples = int(rate * 0.05 * len(text))
    tone = b"".join(
        int(12000 * math.sin(2 * math.pi * 220 * i / rate)).to_bytes(2, "little", signed=True)
        for i in range(samples)
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(tone)
    sys.stdout.buffer.write(buffer.getvalue())


if __name__ == "__main__":
    main()
