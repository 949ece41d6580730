"""Check that a consent recording says the challenge's statement (enrollment check a).

Two signals, both required:

1. **Statement score.** Decoding over a closed vocabulary (the statement's words, the phrase
   vocabulary, 400 frequent English words as decoys; see asr.py), aligned word by word
   (edit-distance alignment) to the expected statement. The score is the fraction of the words
   *before the phrase* (the template with owner, grantee and purposes) the recognizer heard,
   counted over the words its dictionary knows (a display name such as "Okonkwo" cannot be
   recognized and is not counted). The phrase is left out because step 2 checks it on its own:
   counted here too, it lifted another sentence that ends with the right phrase to a third of the
   score. Recognition of free speech is imperfect, so the threshold is calibrated by
   ``bench/consent``, not set by hand.
2. **Phrase.** The audio after the last recognized word before the phrase is decoded again under
   a grammar: the remaining anchor words (optional), then exactly as many words as the phrase
   has, each one of the whole curated vocabulary. Every decoded word must equal the challenge's
   word at that position (or the closed-vocabulary transcript of step 1 must contain the phrase
   verbatim). Reading another challenge's phrase decodes to that phrase and fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policy.consent.asr import RecognizedWord, SpeechRecognizer, pronunciation_dictionary
from policy.consent.statement_text import Statement, decoy_words, phrase_vocabulary
from policy.errors import ChallengePhraseMismatch, StatementNotSpoken

# Calibrated by bench/consent (docs/benchmarks/consent.md, measured at 1f42bc4): the midpoint of
# the thresholds that reject every wrong statement there (highest 0.18) and accept every genuine
# reading (lowest 0.22, espeak-ng's British voice; Piper and Festival 0.47 or more).
DEFAULT_MIN_STATEMENT_SCORE = 0.2


@dataclass(frozen=True)
class StatementScore:
    score: float
    hypothesis: tuple[str, ...]
    phrase_heard: tuple[str, ...]
    phrase_matches: bool


def align_words(expected: list[str] | tuple[str, ...], heard: list[str] | tuple[str, ...]) -> list[tuple[int, int]]:
    """Pairs (expected index, heard index) of equal words on a minimum edit-distance alignment."""
    rows, cols = len(expected), len(heard)
    cost = np.zeros((rows + 1, cols + 1), dtype=np.int32)
    cost[:, 0] = np.arange(rows + 1)
    cost[0, :] = np.arange(cols + 1)
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            substitution = cost[i - 1, j - 1] + (0 if expected[i - 1] == heard[j - 1] else 1)
            cost[i, j] = min(substitution, cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    pairs = []
    i, j = rows, cols
    while i > 0 and j > 0:
        same = expected[i - 1] == heard[j - 1]
        if cost[i, j] == cost[i - 1, j - 1] + (0 if same else 1):
            if same:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def _phrase_grammar(*, optional_words: list[str], phrase_length: int) -> str:
    vocabulary = " | ".join(phrase_vocabulary())
    prefix = " ".join(f"[{word}]" for word in optional_words)
    slots = " ".join(["<phraseword>"] * phrase_length)
    return f"#JSGF V1.0;\ngrammar consentphrase;\npublic <tail> = {prefix} {slots};\n<phraseword> = ({vocabulary});\n"


def score_statement(
    *, audio: np.ndarray, sample_rate: int, statement: Statement, recognizer: SpeechRecognizer
) -> StatementScore:
    """Measure how well the recording matches the statement (no decision; see verify_statement)."""
    dictionary = pronunciation_dictionary()
    listen_for = set(statement.words) | decoy_words() | set(phrase_vocabulary())
    heard: list[RecognizedWord] = recognizer.transcribe(audio, sample_rate=sample_rate, vocabulary=listen_for)
    heard_text = [word.text for word in heard]
    pairs = align_words(statement.words, heard_text)
    known = [index for index, word in enumerate(statement.words[: statement.phrase_start]) if word in dictionary]
    matched = {expected_index for expected_index, _ in pairs}
    score = sum(1 for index in known if index in matched) / max(len(known), 1)

    # Start of the phrase: right after the last word before it that the recognizer heard.
    before = [(e, h) for e, h in pairs if e < statement.phrase_start]
    if before:
        anchor_expected, anchor_heard = before[-1]
        start_s = heard[anchor_heard].end_s
        optional = [w for w in statement.words[anchor_expected + 1 : statement.phrase_start] if w in dictionary]
    else:
        start_s = 0.0
        optional = [w for w in statement.words[: statement.phrase_start] if w in dictionary]
    tail = audio[int(start_s * sample_rate) :]
    phrase_heard: tuple[str, ...] = ()
    if tail.size > sample_rate // 4:
        grammar = _phrase_grammar(optional_words=optional, phrase_length=len(statement.phrase))
        decoded = recognizer.decode_grammar(tail, sample_rate=sample_rate, jsgf=grammar)
        vocabulary = set(phrase_vocabulary())
        phrase_heard = tuple(word.text for word in decoded if word.text in vocabulary)
    # Either search may drop a word; both only ever output vocabulary words, so a recording of
    # another phrase still decodes to that other phrase in both.
    n = len(statement.phrase)
    in_transcript = any(tuple(heard_text[i : i + n]) == statement.phrase for i in range(len(heard_text) - n + 1))
    return StatementScore(
        score=score,
        hypothesis=tuple(heard_text),
        phrase_heard=phrase_heard,
        phrase_matches=phrase_heard == statement.phrase or in_transcript,
    )


def verify_statement(
    *,
    audio: np.ndarray,
    sample_rate: int,
    statement: Statement,
    recognizer: SpeechRecognizer,
    min_score: float = DEFAULT_MIN_STATEMENT_SCORE,
) -> StatementScore:
    """Raise unless the recording says the statement and, word for word, its random phrase."""
    result = score_statement(audio=audio, sample_rate=sample_rate, statement=statement, recognizer=recognizer)
    if result.score < min_score:
        raise StatementNotSpoken(
            f"the recording does not say the statement (score {result.score:.2f} < {min_score:.2f})"
        )
    if not result.phrase_matches:
        raise ChallengePhraseMismatch(
            f"the confirmation words heard ({' '.join(result.phrase_heard) or 'none'}) are not this challenge's"
        )
    return result
