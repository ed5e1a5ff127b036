"""Run a test engine server as its own process: ``python -m tests.servers cosyvoice --port P ...``.

Benchmarks and load tests use separate processes, as real engine instances are.
"""

from __future__ import annotations

import argparse

import uvicorn

from tests.servers.engines import Behaviour, cosyvoice_app, emotivoice_app, openai_app

APPS = {"cosyvoice": cosyvoice_app, "emotivoice": emotivoice_app, "openai": openai_app}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted(APPS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds-per-char", type=float, default=0.0)
    parser.add_argument("--capacity", type=int, default=None, help="concurrent requests before out of memory")
    parser.add_argument("--error-rate", type=float, default=0.0)
    args = parser.parse_args()
    behaviour = Behaviour(
        seconds_per_char=args.seconds_per_char, capacity=args.capacity, error_rate=args.error_rate
    )
    uvicorn.run(APPS[args.kind](behaviour), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
