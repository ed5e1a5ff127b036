"""A stand-in for GLM-TTS's Gradio server, a real Gradio app with upstream's interface and a tone for a model.

Interface copied from zai-org/GLM-TTS@c5dc7aecc3b4032032d631b271e767893984f821,
``tools/gradio_app.py``: the same components in the same order, the same
``run_inference(prompt_text, prompt_audio_path, input_text, seed, sample_rate,
use_cache=True)`` bound to the Generate button (so its API name is
``/run_inference``), ``clear_memory`` on the second button, the same checks
and ``gr.Error`` messages, the answer ``(sample_rate, int16 samples)``, and
``app.queue()`` with its default of one run at a time.

What it can be told (command line): ``--seconds-per-char`` (how slow),
``--capacity N`` with ``--concurrency M > N`` (more than N runs at once fail
the way a GPU does: ``Inference failed: CUDA out of memory``), ``--answer-rate``
(the rate it answers at, whatever was asked: a server set up differently),
``--record FILE`` (one JSON line per run: the arguments, whether it loaded the
model, and the prompt audio's rate, channels and length as the server received
it), ``--load-seconds`` (upstream's ``get_models``: the model loads on the
first call and again whenever a call asks for another ``sample_rate``).

``python -m harness.servers.glmtts_gradio --port 8048``
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import wave

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
import numpy as np


class Model:
    """The behaviour of the tone that stands in for GLM-TTS, and what it was asked."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.in_flight = 0
        self.lock = threading.Lock()
        self.loaded_rate: int | None = None  # upstream's MODEL_CACHE

    def get_models(self, sample_rate: int) -> bool:
        """Upstream's ``get_models``: loads on the first call, and again whenever the rate changes
        (``--load-seconds`` each time); whether this call loaded."""
        with self.lock:
            if self.loaded_rate == sample_rate:
                return False
            time.sleep(self.args.load_seconds)
            self.loaded_rate = sample_rate
            return True

    def record(self, entry: dict[str, object]) -> None:
        if self.args.record:
            with self.lock, open(self.args.record, "a", encoding="utf-8") as out:
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def speak(self, text: str, seed: int, sample_rate: int) -> np.ndarray:
        """0.08 s of a tone per character; its pitch follows the seed (so a seed is heard)."""
        seconds = 0.08 * len(text)
        t = np.arange(int(sample_rate * seconds)) / sample_rate
        return (0.3 * np.sin(2 * np.pi * (200 + seed % 100) * t)).astype(np.float32)


def prompt_facts(path: str) -> dict[str, object]:
    with wave.open(path, "rb") as audio:
        rate = audio.getframerate()
        return {
            "prompt_rate": rate,
            "prompt_channels": audio.getnchannels(),
            "prompt_seconds": audio.getnframes() / rate,
        }


def build(model: Model) -> gr.Blocks:
    def run_inference(
        prompt_text: str,
        prompt_audio_path: str | None,
        input_text: str,
        seed: float,
        sample_rate: int,
        use_cache: bool = True,
    ) -> tuple[int, np.ndarray]:
        """Main inference handler for Gradio."""
        if not input_text:
            raise gr.Error("Please provide text to synthesize.")
        if not prompt_audio_path:
            raise gr.Error("Please upload a prompt audio file.")
        if not prompt_text:
            gr.Warning("Prompt text is empty. Results might be suboptimal.")
        with model.lock:
            model.in_flight += 1
            in_flight = model.in_flight
        try:
            loaded = model.get_models(sample_rate)
            model.record(
                {
                    "prompt_text": prompt_text,
                    "input_text": input_text,
                    "seed": seed,
                    "sample_rate": sample_rate,
                    "use_cache": use_cache,
                    "pid": os.getpid(),
                    "loaded": loaded,
                    **prompt_facts(prompt_audio_path),
                }
            )
            time.sleep(model.args.seconds_per_char * len(input_text))
            if model.args.capacity is not None and in_flight > model.args.capacity:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            rate = model.args.answer_rate or sample_rate
            audio_data = np.clip(model.speak(input_text, int(seed), rate), -1.0, 1.0)
            return (rate, (audio_data * 32767.0).astype(np.int16))
        except Exception as e:
            raise gr.Error(f"Inference failed: {e!s}") from e
        finally:
            with model.lock:
                model.in_flight -= 1

    def clear_memory() -> str:
        return "Memory cleared. Models will reload on next inference."

    app: gr.Blocks
    with gr.Blocks(title="GLMTTS Inference") as app:
        gr.Markdown("# GLMTTS Open Source Demo")
        with gr.Row():
            with gr.Column(scale=1):
                prompt_audio = gr.Audio(label="Upload Prompt Audio (Reference Voice)", type="filepath")
                prompt_text = gr.Textbox(label="Prompt Text", lines=2)
                input_text = gr.Textbox(label="Text to Synthesize", lines=5)
                with gr.Accordion("Advanced Settings", open=True):
                    sample_rate = gr.Radio(choices=[24000, 32000], value=24000, label="Sample Rate (Hz)")
                    seed = gr.Number(label="Seed", value=42, precision=0)
                    use_cache = gr.Checkbox(label="Use KV Cache", value=True)
                generate_btn = gr.Button("Generate Audio", variant="primary", size="lg")
                clear_btn = gr.Button("Clear VRAM", variant="secondary")
            with gr.Column(scale=1):
                output_audio = gr.Audio(label="Synthesized Result")
                status_msg = gr.Textbox(label="System Status", interactive=False)

        generate_btn.click(
            fn=run_inference,
            inputs=[prompt_text, prompt_audio, input_text, seed, sample_rate, use_cache],
            outputs=[output_audio],
        )
        clear_btn.click(fn=clear_memory, inputs=None, outputs=[status_msg])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8048)
    parser.add_argument("--seconds-per-char", type=float, default=0.0)
    parser.add_argument("--capacity", type=int, default=None, help="runs at once before out of memory")
    parser.add_argument("--concurrency", type=int, default=1, help="the queue's runs at once (upstream: 1)")
    parser.add_argument("--answer-rate", type=int, default=None, help="answer at this rate, whatever asked")
    parser.add_argument("--record", default=None, help="a file to append each run's arguments to")
    parser.add_argument(
        "--load-seconds", type=float, default=0.0, help="loading the model (first call, new rate)"
    )
    args = parser.parse_args()
    app = build(Model(args))
    app.queue(default_concurrency_limit=args.concurrency).launch(
        server_name="127.0.0.1", server_port=args.port, share=False, quiet=True
    )


if __name__ == "__main__":
    main()
