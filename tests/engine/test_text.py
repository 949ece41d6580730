"""English normalisation: what the embedded engine actually speaks."""

from __future__ import annotations

import pytest

from engine.text import cardinal, normalize_english, ordinal, pack_sentences, split_sentences, year


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (99, "ninety-nine"),
        (105, "one hundred five"),
        (1234, "one thousand two hundred thirty-four"),
        (2_000_017, "two million seventeen"),
    ],
)
def test_cardinal(number: int, words: str) -> None:
    assert cardinal(number) == words


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (12, "twelfth"),
        (20, "twentieth"),
        (21, "twenty-first"),
        (105, "one hundred fifth"),
    ],
)
def test_ordinal(number: int, words: str) -> None:
    assert ordinal(number) == words


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (1999, "nineteen ninety-nine"),
        (2005, "two thousand five"),
        (2024, "twenty twenty-four"),
        (1900, "nineteen hundred"),
        (1805, "eighteen oh five"),
    ],
)
def test_year(number: int, words: str) -> None:
    assert year(number) == words


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Dr. Smith paid $5.50.", "Doctor Smith paid five dollars and fifty cents."),
        ("It costs $1.", "It costs one dollar."),
        ("We met on 2024-03-05.", "We met on March fifth, twenty twenty-four."),
        ("Due 12/25/2023 at noon.", "Due December twenty-fifth, twenty twenty-three at noon."),
        ("On March 5th, 2021 it rained.", "On March fifth, twenty twenty-one it rained."),
        ("Born 23 Jan 2020.", "Born the twenty-third of January, twenty twenty."),
        ("Meet at 3:30 pm.", "Meet at three thirty p m."),
        ("Meet at 10:00.", "Meet at ten o'clock."),
        ("Meet at 9:05.", "Meet at nine oh five."),
        ("In 1999, 1,234 people came.", "In nineteen ninety-nine, one thousand two hundred thirty-four people came."),
        ("Growth was 12.5% in the 1990s.", "Growth was twelve point five percent in the nineteen nineties."),
        ("It was the 21st try.", "It was the twenty-first try."),
        ("It is -4 degrees.", "It is minus four degrees."),
        (
            "Mr. and Mrs. Brown live on Main St. near St. Mary's.",
            "Mister and Missus Brown live on Main Street near Saint Mary's.",
        ),
        ("Fruit, e.g. apples & pears.", "Fruit, for example apples and pears."),
        ("Room No. 7, version 2.0.1.", "Room Number seven, version two point zero point one."),
    ],
)
def test_normalize_english(text: str, spoken: str) -> None:
    assert normalize_english(text) == spoken


def test_no_digits_survive_normalisation() -> None:
    spoken = normalize_english("Call 555 0199 on 4/1/2025 at 7:45 am about order 88123 for $1,250.75.")
    assert not any(ch.isdigit() for ch in spoken)


def test_split_sentences_keeps_order_and_titles() -> None:
    text = normalize_english("Mr. Brown said hi! Then he left? Dr. Who stayed. The end.")
    assert split_sentences(text) == ["Mister Brown said hi!", "Then he left?", "Doctor Who stayed.", "The end."]


def test_split_sentences_cuts_long_sentences() -> None:
    text = ", ".join(["a long clause of words"] * 40) + "."
    pieces = split_sentences(text, max_chars=120)
    assert len(pieces) > 5
    assert all(len(piece) <= 121 for piece in pieces)
    assert " ".join(pieces).replace(" ", "") == text.replace(" ", "")


def test_full_width_sentence_ends_split_without_spaces() -> None:
    assert split_sentences("你好。今天天气很好！我们去公园吧？好的") == [
        "你好。",
        "今天天气很好！",
        "我们去公园吧？",
        "好的",
    ]


def test_pack_sentences_joins_whole_sentences_up_to_the_limit() -> None:
    text = "One two. Three four five six. Seven eight nine ten eleven twelve thirteen fourteen."
    pieces = pack_sentences(text, max_chars=30)
    assert pieces[0] == "One two. Three four five six."
    assert all(len(piece) <= 30 for piece in pieces)
    assert " ".join(pieces) == text  # nothing dropped, order kept
