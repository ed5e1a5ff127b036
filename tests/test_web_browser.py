"""The page in a real browser (Debian's Chromium, driven by Playwright): speak and hear it while it is
made, a bad reference's error in words, a job followed to 100 %, the engines. Screenshots of each
screen go to ``$VOXSERVE_SCREENSHOTS`` (docs/web for the docs), else to the test's folder."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.support.signals import GOOD
from voxserve.audio.pcm import wav_bytes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: make test installs Debian's")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--autoplay-policy=no-user-gesture-required"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": 1100, "height": 800})
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(f"{server}/")
    opened.wait_for_function("document.querySelector('#voice').options.length > 3")
    yield opened
    opened.close()
    assert not errors, errors


def shot(page: Page, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("VOXSERVE_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_the_first_voice_is_the_best_native_one_and_each_voice_says_its_language(page: Page) -> None:
    options = page.eval_on_selector_all("#voice option", "all => all.map(o => [o.value, o.textContent])")
    assert options[0] == ["default", "default (best for the language)"]
    assert ["zf_xiaobei", "zf_xiaobei · kokoro, Mandarin, female"] in options
    assert ["bm_george", "bm_george · kokoro, British English, male"] in options
    espeak = dict(options)["espeak"]
    assert re.fullmatch(r"espeak · espeak, \d+ languages", espeak), "many languages: how many, not each"


def test_typed_text_plays_while_it_is_made(page: Page, tmp_path: Path) -> None:
    page.fill(
        "#text", f"Listen while it is made, take {uuid.uuid4().hex[:6]}. " + "Another sentence follows. " * 5
    )
    page.select_option("#model", "kokoro")
    page.click("#play")
    page.wait_for_function("Number(document.body.dataset.audioChunks || 0) > 0", timeout=60_000)
    assert page.text_content("#speak-status") == "speaking…", "audio arrived before the synthesis ended"
    page.wait_for_function("document.querySelector('#speak-status').textContent === 'done'", timeout=120_000)
    assert page.locator("#segments tbody tr").count() >= 3
    words = page.eval_on_selector_all("#read-along span", "all => all.map(s => s.textContent)")
    assert words[:4] == ["Listen", "while", "it", "is"], "Kokoro's words, each on its own"
    page.wait_for_function("Number(document.body.dataset.spokenWords || 0) > 5", timeout=30_000)
    assert page.locator("#read-along span.now").count() <= 1, "the word being heard, marked"
    assert page.is_visible("#download") and page.get_attribute("#download", "href", timeout=1000)
    with page.expect_download() as saved:
        page.select_option("#download-as select", "mp3")
    assert saved.value.suggested_filename == "speech.mp3"
    shot(page, "speak", tmp_path)


def test_voices_are_heard_and_a_bad_reference_is_explained_in_words(page: Page, tmp_path: Path) -> None:
    page.click("nav button[data-tab=voices]")
    page.wait_for_selector("#voice-list tbody tr")
    page.fill("#blend-formula", "jf_alpha(2)+jm_kumo(1)")
    page.click("#blend-listen")
    assert page.evaluate("document.body.dataset.blendLanguage") == "ja", "a Japanese blend says Japanese"
    page.get_by_role("button", name="Listen to heart").click()
    page.wait_for_function("Number(document.body.dataset.previews || 0) >= 2", timeout=60_000)
    short = wav_bytes((0.3 * np.sin(np.arange(24000) / 10)).astype(np.float32), 24000)
    page.set_input_files("#audio", {"name": "short.wav", "mimeType": "audio/wav", "buffer": short})
    page.fill("#voice-name", "too-short")
    page.click("#upload button[type=submit]")
    page.wait_for_selector("#error:not([hidden])")
    assert "a reference must be 3–15 s" in (page.text_content("#error") or "")
    page.set_input_files("#audio", {"name": "me.wav", "mimeType": "audio/wav", "buffer": GOOD})
    page.fill("#voice-name", f"me-{uuid.uuid4().hex[:6]}")
    page.click("#upload button[type=submit]")
    page.wait_for_selector("#notice:not([hidden])")
    assert page.is_hidden("#error"), "a stored voice is not an error"
    assert "no engine here can clone" in (page.text_content("#notice") or ""), "its warning, as a warning"
    shot(page, "voices", tmp_path)


def test_a_job_is_followed_to_the_end(page: Page, tmp_path: Path) -> None:
    page.click("nav button[data-tab=jobs]")
    name = f"web-{uuid.uuid4().hex[:6]}"
    page.fill("#job-text", "A job from the page. It has a few sentences. They are made one by one.")
    page.fill("#job-name", name)
    page.click("#job-form button[type=submit]")
    row = page.locator("#job-list tbody tr", has_text=name)
    row.wait_for()
    done = """name => [...document.querySelectorAll('#job-list tbody tr')].some(row =>
        row.textContent.includes(name) && row.cells[1].textContent === 'succeeded'
        && row.querySelector('progress').value === row.querySelector('progress').max)"""
    page.wait_for_function(done, arg=name, timeout=120_000)
    shot(page, "jobs", tmp_path)


def test_a_job_with_a_voice_and_a_cast_is_heard_within_a_second_of_its_first_sentence(
    page: Page, tmp_path: Path
) -> None:
    page.click("nav button[data-tab=jobs]")
    name = f"cast-{uuid.uuid4().hex[:6]}"
    script = "夜深了，灯塔还亮着。\n\n守夜人：我听见海浪的声音。\n\n他走上了楼梯，风越来越大。"
    page.fill("#job-text", script)
    page.fill("#job-name", name)
    page.select_option("#job-model", "kokoro")
    page.select_option("#job-voice", "zf_xiaobei")
    page.fill("#job-language", "zh")
    page.fill("#job-cast", "守夜人 = zm_yunxi")
    page.click("#job-form button[type=submit]")
    row = page.locator("#job-list tbody tr", has_text=name)
    row.wait_for()
    row.get_by_role("button", name="Listen").click()
    job_id = row.get_attribute("data-job")
    page.wait_for_function("document.body.dataset.jobPlayingAt", timeout=120_000)
    first = page.evaluate(f"Number(document.body.getAttribute('data-first-segment-{job_id}'))")
    playing = page.evaluate("Number(document.body.dataset.jobPlayingAt)")
    assert first and playing - first < 1000, f"playing {playing - first:.0f} ms after the first sentence"
    job = page.evaluate(f"fetch('/v1/jobs/{job_id}').then(r => r.json())")
    assert (job["model"], job["voice"], job["language"]) == ("kokoro", "zf_xiaobei", "zh")
    assert job["voices"] == {"守夜人": {"voice": "zm_yunxi"}}
    done = "id => document.querySelector(`tr[data-job='${id}']`)?.cells[1].textContent === 'succeeded'"
    page.wait_for_function(done, arg=job_id, timeout=120_000)
    vtt = page.evaluate(f"fetch('/v1/jobs/{job_id}/captions?format=vtt').then(r => r.text())")
    assert "<v 守夜人>我听见海浪的声音。" in vtt
    shot(page, "jobs", tmp_path)


def test_voices_of_an_engine_that_cannot_serve_are_marked_not_offered(page: Page) -> None:
    def espeak_down(route: Route) -> None:
        listed = route.fetch().json()
        for engine in listed["engines"]:
            if engine["name"] == "espeak":
                engine["status"] = "unavailable"
        route.fulfill(json=listed)

    page.route("**/v1/engines", espeak_down)
    page.reload()
    page.wait_for_function("document.querySelector('#voice').options.length > 3")
    option = page.locator("#voice option[value=espeak]")
    assert option.is_disabled() and "(espeak unavailable)" in (option.text_content() or "")
    assert page.locator("#model option[value=espeak]").is_disabled()
    assert not page.locator("#voice option[value=bm_george]").is_disabled()


def test_a_failed_request_does_not_offer_the_last_ones_audio(page: Page) -> None:
    page.fill("#text", "A short one.")
    page.click("#play")
    page.wait_for_function("document.querySelector('#speak-status').textContent === 'done'", timeout=60_000)
    assert page.is_visible("#download-as")
    page.fill("#speed", "9")
    page.click("#play")
    page.wait_for_selector("#error:not([hidden])")
    assert page.is_hidden("#download-as"), "the picker of the last request's formats is gone"


def test_the_engines_are_listed_live(page: Page, tmp_path: Path) -> None:
    page.click("nav button[data-tab=engines]")
    page.wait_for_function("document.querySelectorAll('#engine-list tbody tr').length >= 3")
    assert "kokoro" in (page.text_content("#engine-list") or "")
    shot(page, "engines", tmp_path)


def test_every_screen_fits_a_phone(browser: Browser, server: str, tmp_path: Path) -> None:
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        phone.goto(f"{server}/")
        phone.wait_for_function("document.querySelector('#voice').options.length > 3")
        for tab in ("voices", "jobs", "engines", "speak"):
            phone.click(f"nav button[data-tab={tab}]")
            phone.wait_for_timeout(300)
            width = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], f"{tab} is wider than the phone: {width}"
        shot(phone, "phone", tmp_path)
    finally:
        phone.close()
