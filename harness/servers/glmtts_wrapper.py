"""A stand-in for a GLM-TTS wrapper script of one's own (its own flags around the model), a tone
instead of a model.

Not upstream's ``glmtts_inference.py`` (see ``glmtts_inference.py`` here for that): a script of
the seed author's own, one run per text, called as
``python glmtts_inference.py --input_text … --prompt_audio … --output_path … --sample_rate 24000
--seed 42``. voxserve runs such a wrapper as a ``command`` engine.

Environment: ``GLMTTS_RECORD`` (a file to write its parsed arguments and pid
to, as JSON), ``GLMTTS_RECORD_DIR`` (a directory to write one such file per
run to, with the GPU it was given and when it ran), ``GLMTTS_SLEEP``
(seconds to run), ``GLMTTS_FAIL`` (a message to print on stderr before
exiting with 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import wave

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input_text", required=True)
    parser.add_argument("--prompt_audio", required=True)
    parser.add_argument("--output_path", required=True)
    parser.add_argument("--sample_rate", type=int, choices=[24000, 32000], default=24000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if os.environ.get("GLMTTS_RECORD"):
        with open(os.environ["GLMTTS_RECORD"], "w", encoding="utf-8") as record:
            json.dump({**vars(args), "pid": os.getpid()}, record, ensure_ascii=False)
    started = time.time()
    time.sleep(float(os.environ.get("GLMTTS_SLEEP", "0")))
    if os.environ.get("GLMTTS_RECORD_DIR"):
        run = {"gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "started": started, "ended": time.time()}
        with open(os.path.join(os.environ["GLMTTS_RECORD_DIR"], f"{os.getpid()}.json"), "w") as record:
            json.dump(run, record)
    if os.environ.get("GLMTTS_FAIL"):
        print("Traceback (most recent call last):\n  ...", file=sys.stderr)
        print(os.environ["GLMTTS_FAIL"], file=sys.stderr)
        return 1
    with wave.open(args.prompt_audio, "rb") as prompt:
        assert (prompt.getframerate(), prompt.getnchannels(), prompt.getsampwidth()) == (24000, 1, 2)
    seconds = 0.08 * len(args.input_text)
    t = np.arange(int(args.sample_rate * seconds)) / args.sample_rate
    samples = (0.3 * np.sin(2 * np.pi * (150 + args.seed % 100) * t) * 32767).astype("<i2")
    with wave.open(args.output_path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(args.sample_rate)
        out.writeframes(samples.tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
