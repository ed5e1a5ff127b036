"""A stand-in for GLM-TTS's ``glmtts_inference.py``: upstream's command line, files and failures; a tone
for a model.

Interface copied from zai-org/GLM-TTS@c5dc7aecc3b4032032d631b271e767893984f821,
``glmtts_inference.py``: the same argument parser (``--data``, ``--exp_name``,
``--use_cache``, ``--use_phoneme``, ``--sample_rate``; anything else is
argparse's "unrecognized arguments", exit 2); ``ckpt/`` and ``frontend/``
read relative to the working directory (missing: a traceback, exit 1);
items read from ``examples/<data>.jsonl`` (``uttid``, ``prompt_text``,
``prompt_speech``, ``syn_text``); ``Processing: <uttid>, ...`` logged before
each item; each item's audio saved as a 32-bit float WAV (what
``torchaudio.save`` writes for a float tensor) at
``<this file's dir>/outputs/pretrain<exp_name>/<data>/<uttid>.wav``, in
order; an item that fails logged (``Error processing <uttid>: ...`` and its
traceback) and skipped; exit 0 at the end all the same.

A test copies this file into a fake checkout as ``glmtts_inference.py``.
What it can be told (environment): ``GLMTTS_LOAD_SECONDS`` (loading the
model), ``GLMTTS_SECONDS_PER_ITEM``, ``GLMTTS_RECORD_DIR`` (one JSON file per
run, written as it starts and again as it ends: its arguments, working
directory, GPU, times, and the items it read). Items whose
text says ``fail`` fail; ``oom`` fail as a GPU out of memory does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import struct
import sys
import time
import traceback

import numpy as np

CURRENT_DIR = os.path.dirname(os.path.abspath(__file__))

logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(levelname)s - %(message)s")


def save_float_wav(path: str, samples: np.ndarray, rate: int) -> None:
    data = samples.astype("<f4").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 3, 1, rate, rate * 4, 4, 32)
    with open(path, "wb") as out:
        out.write(header + b"data" + struct.pack("<I", len(data)) + data)


def load_models() -> None:
    """Upstream loads ckpt/ and frontend/ relative to where it runs; missing, it dies at once."""
    for needed in (os.path.join("ckpt", "llm"), os.path.join("frontend", "campplus.onnx")):
        if not os.path.exists(needed):
            raise OSError(f"Can't load the model: {needed} does not exist")
    time.sleep(float(os.environ.get("GLMTTS_LOAD_SECONDS", "0")))


def generate(item: dict[str, str], sample_rate: int) -> np.ndarray:
    text = item["syn_text"]
    if "oom" in text:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    if "fail" in text:
        raise RuntimeError("the model could not read this text")
    with open(item["prompt_speech"], "rb") as prompt:  # upstream reads the prompt for each item
        assert prompt.read(4) == b"RIFF"
    time.sleep(float(os.environ.get("GLMTTS_SECONDS_PER_ITEM", "0")))
    t = np.arange(int(sample_rate * 0.08 * len(text))) / sample_rate
    return (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)  # seed 0, fixed: one pitch


def jsonl_generate(data_name: str, folder_path: str, sample_rate: int) -> list[dict[str, str]]:
    jsonl_path = os.path.join("examples", data_name + ".jsonl")
    logging.info(f"Using jsonl: {jsonl_path}")
    with open(jsonl_path, encoding="utf-8") as source:
        item_list = [json.loads(line) for line in source if line.strip()]
    with open(os.path.join(folder_path, "text_compare.jsonl"), "w") as f_out:
        for item in item_list:
            try:
                uttid = item["uttid"]
                logging.info(f"Processing: {uttid}, Syn_text: {item['syn_text']}")
                tts_speech = generate(item, sample_rate)
                f_out.write(json.dumps({"uttid": uttid, "syn_text": item["syn_text"]}) + "\n")
                save_float_wav(os.path.join(folder_path, f"{uttid}.wav"), tts_speech, sample_rate)
            except Exception as e:
                logging.error(f"Error processing {item.get('uttid', 'unknown')}: {e}")
                traceback.print_exc()
    return item_list


def main() -> None:
    parser = argparse.ArgumentParser(description="GLM-TTS Inference Script (Pretrain Mode Only)")
    parser.add_argument("--data", default="example_zh", type=str)
    parser.add_argument("--exp_name", default="_test", type=str)
    parser.add_argument("--use_cache", action="store_true", default=True)
    parser.add_argument("--use_phoneme", action="store_true", default=False)
    parser.add_argument("--sample_rate", type=int, default=24000)
    args = parser.parse_args()
    record = os.path.join(os.environ.get("GLMTTS_RECORD_DIR", ""), f"{os.getpid()}.json")
    run = {
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "started": time.time(),
    }
    if os.environ.get("GLMTTS_RECORD_DIR"):
        with open(record, "w") as out:
            json.dump(run, out)
    load_models()
    folder_path = os.path.join(CURRENT_DIR, "outputs", f"pretrain{args.exp_name}", args.data)
    os.makedirs(folder_path, exist_ok=True)
    logging.info(f"Output folder: {folder_path}")
    items = jsonl_generate(args.data, folder_path, args.sample_rate)
    if os.environ.get("GLMTTS_RECORD_DIR"):
        with open(record, "w") as out:
            json.dump({**run, "items": items, "ended": time.time()}, out, ensure_ascii=False)


if __name__ == "__main__":
    main()
