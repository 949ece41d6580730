"""English text normalisation and sentence splitting for the embedded engine.

espeak (inside Piper) reads digits, but not dates, money, times, ordinals or titles the way a
person would, so these are spelled out here before phonemisation. Sentences are split so long
texts are synthesised and streamed in order, with a cancellation check between sentences.
"""

from __future__ import annotations

import re

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_MONTH_ABBREVIATIONS = {m[:3].lower(): m for m in MONTHS} | {"sept": "September"}

# Titles and common abbreviations whose period is not a sentence end.
_ABBREVIATIONS = {
    "mr": "mister",
    "mrs": "missus",
    "ms": "miz",
    "dr": "doctor",
    "prof": "professor",
    "jr": "junior",
    "sr": "senior",
    "vs": "versus",
    "etc": "et cetera",
    "approx": "approximately",
    "inc": "incorporated",
    "ltd": "limited",
    "co": "company",
    "corp": "corporation",
    "ave": "avenue",
    "mt": "mount",
    "dept": "department",
    "est": "established",
    "fig": "figure",
    "gov": "governor",
    "sen": "senator",
    "rep": "representative",
    "gen": "general",
    "capt": "captain",
    "lt": "lieutenant",
    "sgt": "sergeant",
    "no": "number",
    "vol": "volume",
}
_LATIN = {"e.g.": "for example", "i.e.": "that is", "a.m.": "a m", "p.m.": "p m", "u.s.": "U S"}
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
}
_YEAR_CUES = {"in", "since", "by", "from", "until", "till", "year", "of", "circa", "during", "before", "after"}


def cardinal(number: int) -> str:
    """1234 -> 'one thousand two hundred thirty-four'."""
    if number < 0:
        return "minus " + cardinal(-number)
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + ("-" + _ONES[ones] if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return _ONES[hundreds] + " hundred" + (" " + cardinal(rest) if rest else "")
    for scale, word in _SCALES:
        if number >= scale:
            high, rest = divmod(number, scale)
            return cardinal(high) + " " + word + (" " + cardinal(rest) if rest else "")
    raise ValueError(number)  # unreachable: every number >= 1000 matches a scale


def ordinal(number: int) -> str:
    """21 -> 'twenty-first'."""
    words = cardinal(number)
    head, sep, last = words.rpartition("-") if "-" in words.split(" ")[-1] else words.rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last = last + "th"
    return head + sep + last


def year(number: int) -> str:
    """1999 -> 'nineteen ninety-nine', 2005 -> 'two thousand five', 2024 -> 'twenty twenty-four'."""
    if 2000 <= number <= 2009:
        return cardinal(number)
    high, low = divmod(number, 100)
    if low == 0:
        return cardinal(high) + " hundred"
    if low < 10:
        return cardinal(high) + " oh " + cardinal(low)
    return cardinal(high) + " " + cardinal(low)


def _digits(text: str) -> str:
    return " ".join(_ONES[int(d)] for d in text)


def _number_words(text: str) -> str:
    """'1,234.56' -> cardinal with 'point' and digit-by-digit decimals."""
    whole, _, fraction = text.replace(",", "").partition(".")
    words = cardinal(int(whole)) if whole else "zero"
    if fraction:
        words += " point " + _digits(fraction)
    return words


def _date(month: int, day: int, year_number: int | None) -> str:
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        raise ValueError("not a date")
    spoken = f"{MONTHS[month - 1]} {ordinal(day)}"
    return spoken + (f", {year(year_number)}" if year_number is not None else "")


def _replace_dates(text: str) -> str:
    def iso(match: re.Match[str]) -> str:
        try:
            return _date(int(match["m"]), int(match["d"]), int(match["y"]))
        except ValueError:
            return match[0]

    text = re.sub(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b", iso, text)
    # US order (month/day/year), the order of the voice's accent.
    text = re.sub(r"\b(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})\b", iso, text)
    month_names = "|".join(MONTHS + [m[:3] for m in MONTHS] + ["Sept"])

    def month_day(match: re.Match[str]) -> str:
        month = _MONTH_ABBREVIATIONS[match["month"][:3].lower()]
        spoken = f"{month} {ordinal(int(match['day']))}"
        return spoken + (f", {year(int(match['year']))}" if match["year"] else "")

    text = re.sub(
        rf"\b(?P<month>(?:{month_names})\.?) (?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,? (?P<year>\d{{4}})\b)?",
        month_day,
        text,
    )

    def day_month(match: re.Match[str]) -> str:
        month = _MONTH_ABBREVIATIONS[match["month"][:3].lower()]
        spoken = f"the {ordinal(int(match['day']))} of {month}"
        return spoken + (f", {year(int(match['year']))}" if match["year"] else "")

    return re.sub(
        rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)? (?P<month>{month_names})\.?(?: (?P<year>\d{{4}})\b)?", day_month, text
    )


def _replace_money(text: str) -> str:
    def money(match: re.Match[str]) -> str:
        one, many, sub_one, sub_many = _CURRENCIES[match["symbol"]]
        whole = int(match["whole"].replace(",", ""))
        spoken = f"{cardinal(whole)} {one if whole == 1 else many}"
        if match["scale"]:
            return f"{_number_words(match['whole'] + ((match['cents'] and '.' + match['cents']) or ''))} {match['scale']} {many}"
        if match["cents"] and int(match["cents"]):
            cents = int(match["cents"].ljust(2, "0")[:2])
            spoken += f" and {cardinal(cents)} {sub_one if cents == 1 else sub_many}"
        return spoken

    return re.sub(
        r"(?P<symbol>[$€£])(?P<whole>\d[\d,]*)(?:\.(?P<cents>\d{1,2}))?(?: (?P<scale>million|billion|thousand))?\b",
        money,
        text,
    )


def _replace_times(text: str) -> str:
    def clock(match: re.Match[str]) -> str:
        hour, minute = int(match["h"]), int(match["m"])
        if hour > 23 or minute > 59:
            return match[0]
        if minute == 0:
            spoken = cardinal(hour) + ("" if match["ampm"] else " o'clock")
        elif minute < 10:
            spoken = f"{cardinal(hour)} oh {cardinal(minute)}"
        else:
            spoken = f"{cardinal(hour)} {cardinal(minute)}"
        if match["ampm"]:
            spoken += " " + " ".join(match["ampm"].replace(".", "").lower())
        return spoken

    return re.sub(r"\b(?P<h>\d{1,2}):(?P<m>\d{2})(?:\s?(?P<ampm>[AaPp]\.?[Mm]))?(?=\W|$)", clock, text)


def _replace_numbers(text: str) -> str:
    text = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: ordinal(int(m[1])), text)
    # Version-like dotted groups (2.0.1) are read group by group.
    text = re.sub(r"\b\d+(?:\.\d+){2,}\b", lambda m: " point ".join(cardinal(int(g)) for g in m[0].split(".")), text)
    text = re.sub(r"(\d[\d,]*(?:\.\d+)?)\s?%", lambda m: _number_words(m[1]) + " percent", text)

    def plain(match: re.Match[str]) -> str:
        token = match["num"]
        sign = "minus " if match["sign"] else ""
        before = text[: match.start()].split()
        cue = before[-1].lower().strip(",") if before else ""
        if re.fullmatch(r"\d{4}", token) and 1100 <= int(token) <= 2099 and (cue in _YEAR_CUES or match["s"]):
            spoken = year(int(token))
            if match["s"]:  # decades: 1990s -> nineteen nineties
                spoken = spoken[:-1] + "ies" if spoken.endswith("y") else spoken + "s"
            return sign + spoken
        return sign + _number_words(token) + (" s" if match["s"] else "")

    return re.sub(r"(?P<sign>(?<![\w.])-)?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?P<s>s\b)?", plain, text)


def _replace_abbreviations(text: str) -> str:
    for short, spoken in _LATIN.items():
        text = re.sub(rf"(?<!\w){re.escape(short)}", spoken, text, flags=re.IGNORECASE)
    # "St." is Saint before a name and Street after one.
    text = re.sub(r"\bSt\.(?= [A-Z])", "Saint", text)
    text = re.sub(r"\bSt\.", "Street", text)

    def expand(match: re.Match[str]) -> str:
        word = match[1]
        spoken = _ABBREVIATIONS[word.lower()]
        if word.lower() == "no" and not re.match(r"\s*\d", text[match.end() :]):
            return match[0]
        return spoken.capitalize() if word[0].isupper() else spoken

    pattern = "|".join(sorted(_ABBREVIATIONS, key=len, reverse=True))
    text = re.sub(rf"\b({pattern})\.(?=\s|$)", expand, text, flags=re.IGNORECASE)
    return text.replace("&", " and ").replace("+", " plus ").replace("@", " at ")


def normalize_english(text: str) -> str:
    """Spell out dates, times, money, ordinals, numbers and abbreviations."""
    text = _replace_abbreviations(text)
    text = _replace_dates(text)
    text = _replace_money(text)
    text = _replace_times(text)
    text = _replace_numbers(text)
    return " ".join(text.split())


MAX_SENTENCE_CHARS = 300


# Sentence ends: Latin punctuation before a space, or the full-width marks (no space follows them).
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|(?<=[。！？])\s*")
_CLAUSE_MARKS = (",", ";", ":", "，", "；", "：", "、")


def split_sentences(text: str, *, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Split normalised text into sentences; over-long ones are cut at commas, then at spaces."""
    pieces = _SENTENCE_END.split(text.strip())
    sentences: list[str] = []
    for piece in pieces:
        piece = piece.strip()
        while len(piece) > max_chars:
            cut = max(piece.rfind(mark, 0, max_chars) for mark in _CLAUSE_MARKS)
            if cut <= 0:
                cut = piece.rfind(" ", 0, max_chars)
            if cut <= 0:
                cut = max_chars
            sentences.append(piece[: cut + 1].strip())
            piece = piece[cut + 1 :].strip()
        if any(ch.isalnum() for ch in piece):
            sentences.append(piece)
    return sentences


def pack_sentences(text: str, *, max_chars: int) -> list[str]:
    """Whole sentences joined into pieces of at most ``max_chars`` (a sentence longer than that is
    cut at clauses, then words), for engines that must not get more text per call."""
    pieces: list[str] = []
    for sentence in split_sentences(text, max_chars=max_chars):
        joiner = "" if pieces and pieces[-1][-1:] in "。！？" else " "
        if pieces and len(pieces[-1]) + len(joiner) + len(sentence) <= max_chars:
            pieces[-1] = pieces[-1] + joiner + sentence
        else:
            pieces.append(sentence)
    return pieces
