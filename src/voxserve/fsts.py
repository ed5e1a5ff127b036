"""WeTextProcessing's FSTs in a process of their own, spoken to over a pipe, one JSON line each way.

pynini holds the GIL for the whole of a call (0.7 s for 240 characters of
numbers): in a thread of the service it would stall the event loop and every
other thread for as long. In a child process (a plain ``python -c`` command,
so nothing of the parent's ``__main__`` is run again, as multiprocessing's
``spawn`` would) it stalls nobody. One child serves every normalizer of a process, a request at a
time, as the GIL made them take turns before; one that dies is started again. The module lives
outside ``voxserve.text`` so that the child imports only what it runs.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import IO, Any

log = logging.getLogger(__name__)


def _prebuilt(normalizer: type[Any]) -> Callable[[str], str]:
    """A WeTextProcessing normalizer over the FSTs its package ships, read as they are.

    Its own loader reads them and optimizes them again on every start (2 s for
    English on a slow core, every process, every ``voxserve say``); they were
    written optimized, so reading them as they are gives the same FSTs.
    """
    from pynini import Fst

    class Prebuilt(normalizer):  # type: ignore[misc]  # WeTextProcessing has no type hints
        def build_fst(self, prefix: str, cache_dir: Any, overwrite_cache: bool) -> None:
            self.tagger = Fst.read(os.path.join(cache_dir, f"{prefix}_tagger.fst"))
            self.verbalizer = Fst.read(os.path.join(cache_dir, f"{prefix}_verbalizer.fst"))

    return Prebuilt(overwrite_cache=False).normalize  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def _load() -> dict[str, Callable[[str], str]]:
    from tn.chinese.normalizer import Normalizer as ChineseNormalizer
    from tn.english.normalizer import Normalizer as EnglishNormalizer

    logging.getLogger("wetext").setLevel(logging.WARNING)  # it logs every FST it finds
    return {"zh": _prebuilt(ChineseNormalizer), "en": _prebuilt(EnglishNormalizer)}


def serve(requests: IO[str], answers: IO[str]) -> None:
    """The child: its languages first, then one normalized text per request, until the pipe closes."""
    normalizers = _load()
    answers.write(json.dumps({"languages": sorted(normalizers)}) + "\n")
    answers.flush()
    for line in requests:
        request = json.loads(line)
        try:
            text = normalizers[request["language"]](request["text"])
        except Exception as exc:  # a text the FSTs cannot take (a lone surrogate, say) is read as it is
            log.warning("the normalizer could not read a text (%s); it is left as written", exc)
            text = request["text"]
        answers.write(json.dumps({"text": text}) + "\n")
        answers.flush()


class FstProcess:
    """The parent's side: starts the child on first use and talks to it under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._child: subprocess.Popen[str] | None = None
        self._languages: list[str] = []

    def languages(self) -> list[str]:
        """The languages the FSTs cover, once the child has loaded them (about 1 s the first time)."""
        with self._lock:
            self._running()
            return self._languages

    def normalize(self, text: str, language: str) -> str:
        with self._lock:
            for attempt in (1, 2):
                child = self._running()
                assert child.stdin is not None and child.stdout is not None
                try:
                    child.stdin.write(json.dumps({"text": text, "language": language}) + "\n")
                    child.stdin.flush()
                    answer = child.stdout.readline()
                except OSError:
                    answer = ""
                if answer:
                    return str(json.loads(answer)["text"])
                log.warning("the text normalizer's process ended (attempt %d); starting another", attempt)
                self._stop()
            raise RuntimeError("the text normalizer's process ended twice on one text")

    def _running(self) -> subprocess.Popen[str]:
        if self._child is None or self._child.poll() is not None:
            child = subprocess.Popen(
                [sys.executable, "-c", "from voxserve.fsts import main; main()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                encoding="utf-8",
            )
            assert child.stdout is not None
            first = child.stdout.readline()
            if not first:
                child.wait()
                raise RuntimeError(f"the text normalizer's process did not start (exit {child.returncode})")
            self._languages = list(json.loads(first)["languages"])
            self._child = child
        return self._child

    def _stop(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.wait()
            self._child = None


#: The one FST process of this process.
FSTS = FstProcess()


def main() -> None:
    """The child's entry point. Its answers go to a copy of stdout, and stdout itself to stderr, so
    nothing a library prints can break the protocol; Ctrl-C is the parent's to handle (the child ends
    when its pipe closes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8"), answers)
