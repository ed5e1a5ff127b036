"""Run a test engine server as its own process: ``python -m harness.servers cosyvoice --port P ...``.

Benchmarks and load tests use separate processes, as real engine instances are.
"""

from __future__ import annotations

import argparse
import re

import uvicorn
from fastapi import FastAPI

from harness.servers.cosyvoice import Model, cosyvoice_app
from harness.servers.engines import Behaviour, emotivoice_app, openai_app


def generation_of(args: argparse.Namespace) -> int:
    """``--generation``, else what ``AutoModel`` finds in ``--model_dir`` (upstream reads the model's
    yaml; here its name: ``CosyVoice2-0.5B`` is 2)."""
    if args.generation:
        return int(args.generation)
    found = re.search(r"CosyVoice(\d)", args.model_dir or "")
    return int(found.group(1)) if found else 1


def app_of(kind: str, behaviour: Behaviour, args: argparse.Namespace) -> FastAPI:
    if kind == "cosyvoice":
        return cosyvoice_app(behaviour, Model(generation_of(args), fixed_clone=args.fixed_clone))
    return {"emotivoice": emotivoice_app, "openai": openai_app}[kind](behaviour)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["cosyvoice", "emotivoice", "openai"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="upstream's server binds 0.0.0.0")
    parser.add_argument("--seconds-per-char", type=float, default=0.0)
    parser.add_argument("--capacity", type=int, default=None, help="concurrent requests before out of memory")
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--generation", type=int, choices=[1, 2, 3], default=None, help="CosyVoice's")
    parser.add_argument(
        "--model_dir", default=None, help="CosyVoice's server's own flag: picks the generation"
    )
    parser.add_argument(
        "--fixed-clone", action="store_true", help="CosyVoice's server with issue #1794 fixed"
    )
    args = parser.parse_args()
    behaviour = Behaviour(
        seconds_per_char=args.seconds_per_char, capacity=args.capacity, error_rate=args.error_rate
    )
    uvicorn.run(app_of(args.kind, behaviour, args), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
