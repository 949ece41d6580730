"""Statement text: the curated phrase vocabulary, templates, alignment (no speech needed here)."""

from __future__ import annotations

import itertools
import math

import pytest

from policy.consent.asr import pronunciation_dictionary
from policy.consent.statement_check import align_words
from policy.consent.statement_text import (
    DEFAULT_TEMPLATES,
    MIN_PHRASE_WORDS,
    decoy_words,
    phrase_vocabulary,
    random_phrase,
    render_statement,
    validate_template,
)
from policy.errors import ConsentRequestInvalid, StatementTemplateInvalid


def _distance(a, b):
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def test_vocabulary_is_large_known_to_the_recognizer_and_free_of_near_homophones():
    words = phrase_vocabulary()
    dictionary = pronunciation_dictionary()
    # A challenge is single-use and expires in minutes; 2**25 phrases leave no useful guess.
    assert math.perm(len(words), MIN_PHRASE_WORDS) >= 2**25
    for a, b in itertools.combinations(words, 2):
        assert _distance(dictionary[a], dictionary[b]) >= 3, (a, b)
    # Decoys must not contain phrase words: a decoy match would count for the phrase.
    assert not set(words) & decoy_words()


def test_random_phrase_is_four_distinct_vocabulary_words_and_varies():
    phrases = {random_phrase() for _ in range(50)}
    assert len(phrases) == 50
    for phrase in phrases:
        assert len(phrase) == 4 and len(set(phrase)) == 4 and set(phrase) <= set(phrase_vocabulary())


def test_rejects_phrase_shorter_than_four_words():
    with pytest.raises(ConsentRequestInvalid):
        random_phrase(word_count=3)


@pytest.mark.parametrize(
    "template",
    [
        "I, {owner}, agree that {grantee} may use my voice for {purposes}.",  # no phrase
        "My words are {phrase}. I, {owner}, agree that {grantee} may use my voice for {purposes}.",  # phrase not last
        "I, {owner}, agree that {grantee} may use my voice for {purposes}. Zzyzxq words are {phrase}.",  # unknown word
        "I, {owner}, agree that {grantee} may use my voice for {purposes} {phrase}.",  # no anchor before phrase
        "I, {owner}, {owner}, agree that {grantee} may use my voice for {purposes}. My words are {phrase}.",
    ],
)
def test_rejects_unverifiable_template(template):
    with pytest.raises(StatementTemplateInvalid):
        validate_template(template)


def test_statement_words_and_phrase_position():
    statement = render_statement(
        template=DEFAULT_TEMPLATES["en"],
        owner_name="Ana-Maria O'Neil",
        grantee_name="Acme Studios",
        purposes=["audiobook", "voice_over"],
        phrase=("volcano", "umbrella", "telescope", "chocolate"),
    )
    assert statement.text.endswith("volcano umbrella telescope chocolate.")
    assert "audiobook and voice over" in statement.text
    assert statement.words[statement.phrase_start :] == statement.phrase
    assert statement.anchor_words == ("my", "confirmation", "words", "are")


def test_rejects_statement_without_owner_or_purpose():
    with pytest.raises(ConsentRequestInvalid):
        render_statement(
            template=DEFAULT_TEMPLATES["en"],
            owner_name=" ",
            grantee_name="Acme",
            purposes=["ads"],
            phrase=random_phrase(),
        )
    with pytest.raises(ConsentRequestInvalid):
        render_statement(
            template=DEFAULT_TEMPLATES["en"], owner_name="Joe", grantee_name="Acme", purposes=[], phrase=random_phrase()
        )


def test_alignment_counts_only_words_in_order():
    expected = ["i", "agree", "that", "acme", "may", "use", "my", "voice"]
    assert len(align_words(expected, ["i", "agree", "that", "acme", "may", "use", "my", "boys"])) == 7
    assert len(align_words(expected, ["voice", "my", "use", "may", "acme", "that", "agree", "i"])) <= 1
    assert align_words(expected, []) == []
