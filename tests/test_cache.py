"""The segment cache: a repeated request costs no engine time; LRU by disk size; per-request opt-out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from tests.support.audio import assert_speech_like, decode
from voxserve.cache import SegmentCache, cache_key
from voxserve.engines import SegmentRequest
from voxserve.engines.fake import FakeEngine

BODY = {"input": "One sentence here. And another one.", "response_format": "wav", "seed": 3}


def cache_files(settings_dir: Path) -> list[Path]:
    return sorted((settings_dir / "cache").glob("??/*.f32"))


def test_a_repeated_request_is_served_from_the_cache(
    fake_client: TestClient, fake_engine: FakeEngine, tmp_path: Path
) -> None:
    first = fake_client.post("/v1/audio/speech", json=BODY)
    calls = len(fake_engine.calls)
    assert first.status_code == 200 and calls == 2 and len(cache_files(tmp_path)) == 2
    second = fake_client.post("/v1/audio/speech", json=BODY)
    assert second.content == first.content, "identical bytes"
    assert len(fake_engine.calls) == calls, "no engine call"
    assert_speech_like(decode(second.content))
    metrics = fake_client.get("/metrics").text
    assert 'voxserve_cache_lookups_total{engine="fake",result="hit"} 2.0' in metrics
    assert 'voxserve_cache_lookups_total{engine="fake",result="miss"} 2.0' in metrics
    assert f"voxserve_cache_bytes {float(sum(p.stat().st_size for p in cache_files(tmp_path)))}" in metrics
    other_seed = fake_client.post("/v1/audio/speech", json={**BODY, "seed": 4})
    assert other_seed.status_code == 200 and len(fake_engine.calls) == calls + 2, "the seed is in the key"


def test_cache_control_opts_out(fake_client: TestClient, fake_engine: FakeEngine, tmp_path: Path) -> None:
    fake_client.post("/v1/audio/speech", json=BODY, headers={"Cache-Control": "no-store"})
    assert len(fake_engine.calls) == 2 and not cache_files(tmp_path), "no-store: nothing kept"
    fake_client.post("/v1/audio/speech", json=BODY)
    fake_client.post("/v1/audio/speech", json=BODY, headers={"Cache-Control": "no-cache"})
    assert len(fake_engine.calls) == 6, "no-cache: synthesized anew"
    fake_client.post("/tts", data={"text": BODY["input"], "seed": "3"}, headers={"Cache-Control": "no-store"})
    assert len(fake_engine.calls) == 8


def test_least_recently_used_segments_go_first(tmp_path: Path) -> None:
    cache = SegmentCache(tmp_path, max_bytes=3 * 4000)
    audio = np.ones(1000, dtype=np.float32)  # 4000 bytes each
    keys = [cache_key("e", 16000, SegmentRequest(text=str(i), language="en", voice="v")) for i in range(4)]
    for key in keys[:3]:
        cache.put(key, audio)
    assert cache.get(keys[0]) is not None  # used: now the most recent
    cache.put(keys[3], audio)  # over the limit: evict down to 90 %
    assert cache.get(keys[1]) is None and cache.get(keys[2]) is None
    assert cache.get(keys[0]) is not None and cache.get(keys[3]) is not None
    assert cache.size == 8000 and SegmentCache(tmp_path, 12000).size == 8000, "the size survives a restart"
