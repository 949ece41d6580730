"""The consent statement: curated phrase vocabulary, templates, and the rendered statement.

The random phrase is drawn with ``secrets`` from ``vocabulary.txt``: concrete English nouns that
are in the recognizer's dictionary with a pronunciation at least three phone edits away from every
other word of the list (no homophones, no "voice"/"boys" pairs), less the words the recognizer
was measured to confuse in synthetic readings; ``bench/consent/curate_vocabulary.py`` rebuilds it. How often the recognizer then hears a phrase right is measured by ``bench/consent``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from policy.consent.asr import pronunciation_dictionary
from policy.errors import ConsentRequestInvalid, StatementTemplateInvalid

MIN_PHRASE_WORDS = 4

DEFAULT_TEMPLATES = {
    "en": "I, {owner}, agree that {grantee} may use my voice for {purposes}. My confirmation words are {phrase}.",
}

_PLACEHOLDERS = ("{owner}", "{grantee}", "{purposes}", "{phrase}")
_WORD = re.compile(r"[a-z']+")


@cache
def phrase_vocabulary() -> tuple[str, ...]:
    text = files("policy.consent").joinpath("vocabulary.txt").read_text(encoding="utf-8")
    words = tuple(sorted({line.strip() for line in text.splitlines() if line.strip()}))
    dictionary = pronunciation_dictionary()
    missing = [word for word in words if word not in dictionary]
    if missing:
        raise StatementTemplateInvalid(f"phrase vocabulary words unknown to the recognizer: {missing}")
    return words


@cache
def decoy_words() -> frozenset[str]:
    """The 400 most probable words of the recognizer's general language model (see asr.py)."""
    text = files("policy.consent").joinpath("decoy_words.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def random_phrase(*, word_count: int = MIN_PHRASE_WORDS) -> tuple[str, ...]:
    """Distinct words drawn uniformly with a CSPRNG (88 words, 4 words: about 25.7 bits)."""
    if word_count < MIN_PHRASE_WORDS:
        raise ConsentRequestInvalid(f"a challenge phrase needs at least {MIN_PHRASE_WORDS} words")
    pool = list(phrase_vocabulary())
    phrase = []
    for _ in range(word_count):
        phrase.append(pool.pop(secrets.randbelow(len(pool))))
    return tuple(phrase)


def words_of(text: str) -> list[str]:
    """Lower-case words as the recognizer writes them (punctuation dropped, underscores split)."""
    return _WORD.findall(text.lower().replace("_", " ").replace("-", " "))


def validate_template(template: str) -> None:
    """Refuse a template the verifier could not check; the phrase must end it (see verify)."""
    for placeholder in _PLACEHOLDERS:
        if template.count(placeholder) != 1:
            raise StatementTemplateInvalid(f"template must contain {placeholder} exactly once")
    if template.rstrip(" .!").endswith("{phrase}") is False:
        raise StatementTemplateInvalid("the {phrase} placeholder must end the template")
    fixed = template
    for placeholder in _PLACEHOLDERS:
        fixed = fixed.replace(placeholder, " ")
    fixed_words = words_of(fixed)
    dictionary = pronunciation_dictionary()
    unknown = [word for word in fixed_words if word not in dictionary]
    if unknown:
        raise StatementTemplateInvalid(f"template words unknown to the recognizer: {unknown}")
    # The words just before the phrase anchor the phrase search; without them it has no start.
    before_phrase = template.split("{phrase}")[0]
    for placeholder in _PLACEHOLDERS[:3]:
        before_phrase = before_phrase.split(placeholder)[-1]
    if len(words_of(before_phrase)) < 2:
        raise StatementTemplateInvalid("at least two fixed words must come right before {phrase}")


@dataclass(frozen=True)
class Statement:
    """A rendered statement and the word sequence the recording must contain."""

    text: str
    words: tuple[str, ...]
    phrase: tuple[str, ...]
    # Index in ``words`` where the phrase starts (the phrase runs to the end).
    phrase_start: int
    # The fixed template words right before the phrase (the anchor of the phrase search).
    anchor_words: tuple[str, ...]


def render_statement(
    *,
    template: str,
    owner_name: str,
    grantee_name: str,
    purposes: list[str] | tuple[str, ...],
    phrase: tuple[str, ...],
) -> Statement:
    validate_template(template)
    if not owner_name.strip() or not grantee_name.strip() or not purposes:
        raise ConsentRequestInvalid("owner name, grantee name and at least one purpose are required")
    purpose_text = " and ".join(p.replace("_", " ") for p in purposes)
    head = template.split("{phrase}")[0]
    tail = template.split("{phrase}")[1]
    values = {"{owner}": owner_name.strip(), "{grantee}": grantee_name.strip(), "{purposes}": purpose_text}
    rendered_head = head
    for placeholder, value in values.items():
        rendered_head = rendered_head.replace(placeholder, value)
    text = rendered_head + " ".join(phrase) + tail
    head_words = words_of(rendered_head)
    anchor_source = head
    for placeholder in _PLACEHOLDERS[:3]:
        anchor_source = anchor_source.split(placeholder)[-1]
    return Statement(
        text=text,
        words=tuple(head_words) + tuple(phrase),
        phrase=tuple(phrase),
        phrase_start=len(head_words),
        anchor_words=tuple(words_of(anchor_source)),
    )
