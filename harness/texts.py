"""Fixed texts, so every run of a benchmark measures the same work."""

from __future__ import annotations

SHORT_TEXTS = [
    "The morning train was late again, so we walked to the office.",
    "Please remember to water the plants before you leave on Friday.",
    "A good map is worth more than a fast car on these mountain roads.",
    "The library closes early during the summer holidays.",
    "She opened the window and listened to the rain on the roof.",
    "Our team finished the project two weeks ahead of schedule.",
    "He always orders the same soup at the little cafe on the corner.",
    "The museum has a new exhibition about ancient ships and sailors.",
    "If the weather is clear tonight, we can see the planets rise.",
    "Children were laughing as they chased the kite across the field.",
    "The old bridge was closed for repairs until the end of spring.",
    "Remember that the meeting starts at noon in the main hall.",
    "Fresh bread from the bakery smells wonderful in the early morning.",
    "The river was calm, and the boats drifted slowly toward the sea.",
    "Our neighbors planted a row of apple trees along the fence.",
    "The concert was sold out, but we found tickets at the last minute.",
    "He fixed the bicycle with a borrowed wrench and a lot of patience.",
    "The garden is quiet except for the bees moving between the flowers.",
    "After dinner, we played cards until the candles burned down.",
    "The letter arrived a week late, but the news inside was good.",
]

LONG_TEXT = " ".join(SHORT_TEXTS * 2)[:2000]

CHINESE_TEXT = (
    "今天早上的火车又晚点了，我们只好走路去办公室。"
    "图书馆在暑假期间会提前关门。"
    "她打开窗户，静静地听着屋顶上的雨声。"
    "我们的团队比计划提前两周完成了这个项目。"
    "如果今晚天气晴朗，我们就能看到行星升起。"
)
