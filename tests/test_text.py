"""Normalization and segmentation tables for en and zh, and segmentation properties."""

from __future__ import annotations

import re
import threading
import time

import pysbd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxserve.text import TextNormalizer, detect_language, segment, split_text


@pytest.fixture(scope="module")
def normalizer() -> TextNormalizer:
    normalizer = TextNormalizer()
    normalizer.load()
    return normalizer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "$3.50 on 2024-05-01 at 10:30",
            "three dollars and fifty cents on the first of may twenty twenty four at ten thirty",
        ),
        ("GPT-4 is here", "GPT four is here"),
        ("Call 555-1234", "Call five five five, one two three four"),
        ("Meet me on Baker St. today", "Meet me on Baker Street today"),
        ("St. Louis", "Saint Louis"),
        ("It is 50% off", "It is fifty percent off"),
        ("the 1990s", "the nineteen nineties"),
        ("The 3rd item weighs 5kg", "The third item weighs five kilograms"),
        ("$1 or $100", "one dollar or one hundred dollars"),
        ("No numbers here.", "No numbers here."),
        (
            "id 12345678901234567",
            "id one two three four, five six seven eight, nine zero one two, three four five six, seven",
        ),
    ],
)
def test_english_normalization(normalizer: TextNormalizer, text: str, expected: str) -> None:
    assert normalizer.normalize(text, "en") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("共3.5元，2024年5月1日", "共三点五元,二零二四年五月一日"),
        ("￥100元", "一百元"),
        ("¥12.5", "十二点五元"),
        ("GPT-4模型", "GPT 四模型"),
        ("电话555-1234", "电话五五五，一二三四"),
        ("温度-5度", "温度负五度"),
        ("下午3:30开会", "下午三点三十分开会"),
        ("百分之50%的人", "百分之百分之五十的人"),
        ("卡号1234567890123456", "卡号一二三四，五六七八，九零一二，三四五六"),
    ],
)
def test_chinese_normalization(normalizer: TextNormalizer, text: str, expected: str) -> None:
    assert normalizer.normalize(text, "zh") == expected


def test_japanese_passes_through(normalizer: TextNormalizer) -> None:
    assert normalizer.normalize("今日は3月です。", "ja") == "今日は3月です。"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Hello there", "en"),
        ("你好，世界", "zh"),
        ("こんにちは", "ja"),
        ("我用GPT写代码", "zh"),
        ("42", "en"),
    ],
)
def test_language_detection(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        (
            "Dr. Smith went to Washington. He paid $3.50! Really? Yes.",
            200,
            ["Dr. Smith went to Washington.", "He paid $3.50!", "Really?", "Yes."],
        ),
        ("你好。今天天气很好！我们去公园吧？", 200, ["你好。", "今天天气很好！", "我们去公园吧？"]),
        (
            "今天天气很好，我们去公园吧，然后去吃饭，再去看电影。",
            12,
            ["今天天气很好，", "我们去公园吧，", "然后去吃饭，再去看电影。"],
        ),
        (
            "This is a long sentence, with clauses; and more words that go on and on.",
            30,
            ["This is a long sentence,", "with clauses;", "and more words that go on and", "on."],
        ),
        (
            "Numbers like 1,000,000 and 3.14159 and tags like [h][ǎo] or {HH AH0 L OW1} stay whole.",
            20,
            [
                "Numbers like",
                "1,000,000 and",
                "3.14159 and tags",
                "like [h][ǎo] or",
                "{HH AH0 L OW1} stay",
                "whole.",
            ],
        ),
        ("Wait… what?! ……", 200, ["Wait… what?! ……"]),
        (",。aaaaaaaaaaa[h][ǎo]", 20, [",。", "aaaaaaaaaaa[h][ǎo]"]),  # found by hypothesis
        ("First line\n\nSecond line", 200, ["First line", "Second line"]),
    ],
)
def test_segmentation_table(text: str, limit: int, expected: list[str]) -> None:
    assert split_text(text, limit) == expected


@pytest.mark.parametrize(
    "line",
    [
        "今天天气很好，我们一起去公园散步吧。",
        "Hello world",
        "It costs 3,5 dollars and more",
        "Read [h][ǎo] aloud, then {HH AH0 L OW1}?",
        "“引号里的话”，然后继续说",
    ],
)
def test_a_line_with_one_sentence_skips_the_splitter_with_the_same_result(
    line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line whose only sentence mark, if any, is its last character is not given to pysbd;
    pysbd would have returned it whole."""
    expected = [s.strip() for s in pysbd.Segmenter(language="en", clean=False).segment(line)]

    def no_splitter() -> None:
        raise AssertionError("pysbd was asked")

    monkeypatch.setattr(segment, "_sentence_splitter", no_splitter)
    assert list(segment.sentences(line)) == expected == [line]


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


_alphabet = st.sampled_from(
    list("abcdefghij ABC,.;:!?") + list("你好世界天气，。！？、") + ["1,000", "3.5", "[h][ǎo]", " ", "\n"]
)


@settings(max_examples=200, deadline=None)
@given(text=st.lists(_alphabet, min_size=1, max_size=400).map("".join), limit=st.integers(20, 120))
def test_segments_rejoin_to_the_input_and_respect_the_limit(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert _squash("".join(pieces)) == _squash(text)
    assert all(piece.strip() for piece in pieces), pieces
    for piece in pieces:
        assert len(piece) <= limit, (piece, limit)


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (
            "Hello there, this is a longer sentence to say.",
            ["Hello there,", "this is a longer sentence to say."],
        ),
        ("The morning train was late again today.", ["The morning train was", "late again today."]),
        ("Supercalifragilisticexpialidocious is a word.", ["Supercalifragilisticexpialidocious is a word."]),
        (  # Mandarin: a clause up to the limit stays whole; only a longer one is cut, between words
            "今天早上的火车又晚点了，我们只好走路去办公室。",
            ["今天早上的火车又晚点了，", "我们只好走路去办公室。"],
        ),
        ("这条河上一共有七座桥。", ["这条河上一共有七座桥。"]),
        (
            "这是一个非常非常长的句子没有任何标点符号一直说下去直到最后才结束。",
            ["这是一个非常非常", "长的句子没有任何标点符号一直说下去直到最后才结束。"],
        ),
        ("Short and sweet.", ["Short and sweet."]),
        ("Tickets cost 1,000,000 dollars here!", ["Tickets cost 1,000,000", "dollars here!"]),
        # a pinyin mark is a character of the word it touches: never a piece of its own, never cut
        ("今天下午我们一起去银行办理业务，然后回家。", ["今天下午我们一起去银行办理业务，", "然后回家。"]),
        (
            "我们去银[h][áng]办理一些非常重要的业务吧没有标点。",
            ["我们去", "银[h][áng]办理一些非常重要的业务吧没有标点。"],
        ),
        ("[ch][óng]庆的夏天很热。", ["[ch][óng]庆的夏天很热。"]),
        ("I [R][EH1][D] it every day, you know.", ["I [R][EH1][D] it every", "day, you know."]),
    ],
)
def test_a_stream_starts_with_a_short_piece(sentence: str, expected: list[str]) -> None:
    assert segment.lead(sentence, 24, 200) == expected


@settings(max_examples=200, deadline=None)
@given(text=st.lists(_alphabet, min_size=1, max_size=200).map("".join), limit=st.integers(20, 120))
def test_a_short_first_piece_rejoins_to_the_sentence(text: str, limit: int) -> None:
    pieces = segment.lead(text, 24, limit)
    assert _squash("".join(pieces)) == _squash(text)
    assert all(len(piece) <= limit for piece in pieces)


def test_punctuation_pysbd_would_drop_is_kept() -> None:
    assert split_text(" !!", 20) == ["!!"]
    assert "".join(split_text("Hi there. ! ? OK.", 40)).replace(" ", "") == "Hithere.!?OK."


_hostile = st.sampled_from(
    [
        *"ab ,.!?;:\n",
        "[h][ǎo]",
        "[pause:0.1s]",
        "[ipa:ab]",
        "[",
        "]",
        "<",
        ">",
        "{",
        "}",
        "。",
        "你",
        "\U000f0001",
        "1,000",
        "3.5",
        "Dr.",
        "\u200b",
        "\x00",
    ]
)


@settings(max_examples=300, deadline=None)
@given(text=st.lists(_hostile, min_size=1, max_size=300).map("".join), limit=st.integers(20, 200))
def test_segmentation_never_fails_on_hostile_text(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert all(len(piece) <= limit for piece in pieces)


def test_a_tag_longer_than_the_limit_is_cut_to_fit() -> None:
    assert split_text("<aaaaaaaaaaaaaaaaaaa>", 20) == ["<aaaaaaaaaaaaaaaaaaa", ">"]


SHAPES = {
    "sentences": "Dr. Smith paid $3.50 at 10:30. Was it fine? Yes! The U.S. team won. ",
    "no marks": "word ",
    "han": "今天天气很好我们一起去公园散步吧",
    "markup": "a[pause:0.01s][h][ǎo] ",
}


@pytest.mark.parametrize("shape", SHAPES)
def test_segmentation_time_grows_linearly_with_one_long_line(shape: str) -> None:
    """Eight times the text takes about eight times as long; quadratic would be sixty-four (pysbd alone
    is superlinear). The bound leaves room for a busy machine."""

    def cost(size: int) -> float:
        line = (SHAPES[shape] * (size // len(SHAPES[shape]) + 1))[:size]
        started = time.process_time()
        split_text(line, 200)
        return time.process_time() - started

    cost(2_000)  # warm the splitters
    small, large = min(cost(20_000) for _ in range(2)), cost(160_000)
    assert large <= 24 * max(small, 0.005), (small, large)


def test_the_fsts_run_beside_the_service_not_in_it(normalizer: TextNormalizer) -> None:
    """pynini holds the GIL for a whole call (0.7 s for these numbers): in the service's process every
    thread and the event loop would stop for as long. In the FST process they tick on; and a process
    that dies is replaced."""
    from voxserve.fsts import FSTS

    numbers = "12345 " * 40
    gaps: list[float] = []
    done = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick)
    ticker.start()
    spoken = normalizer.normalize(numbers, "en")
    done.set()
    ticker.join()
    assert spoken.startswith("twelve thousand three hundred and forty five twelve thousand")
    assert max(gaps) < 0.2, f"another thread waited {max(gaps):.2f} s"
    FSTS._child.kill()  # type: ignore[union-attr]  # as the kernel would for memory
    assert normalizer.normalize("It is 50% off", "en") == "It is fifty percent off"


def test_a_text_the_fsts_cannot_take_is_read_as_written(normalizer: TextNormalizer) -> None:
    """A lone surrogate is valid JSON but not text pynini can encode: the FST process lives on."""
    assert normalizer.normalize("Room 5\ud800 now", "en") == "Room 5\ud800 now"
    assert normalizer.normalize("It is 50% off", "en") == "It is fifty percent off"
