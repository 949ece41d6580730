"""Text rules for synthesis requests: a length limit and operator-configured deny patterns.

Patterns are matched on a normalised form of the text (Unicode NFKC, case-folded, invisible
characters removed, whitespace collapsed) so that homoglyphs, zero-width joiners or odd spacing
do not slip a denied phrase through.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from policy.errors import PolicyError

DEFAULT_MAX_CHARS = 5_000
# Format characters (zero-width space/joiners, BOM, word joiner, bidi controls) are invisible
# when spoken but split words for a pattern matcher.
_INVISIBLE_CATEGORIES = {"Cf"}


class TextRejected(PolicyError):
    code = "text_rejected"


class TextEmpty(TextRejected):
    code = "text_empty"


class TextTooLong(TextRejected):
    code = "text_too_long"


class TextInvalid(TextRejected):
    """Control characters or unpaired surrogates: nothing a person would ask to have spoken."""

    code = "text_invalid"


class TextDenied(TextRejected):
    """The text matches a deny pattern; the message names the rule, never the matched text."""

    code = "text_denied"


class TextRulesMisconfigured(PolicyError):
    code = "text_rules_misconfigured"


@dataclass(frozen=True)
class DenyRule:
    name: str
    pattern: re.Pattern[str]


def normalise_for_matching(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    visible = "".join(char for char in folded if unicodedata.category(char) not in _INVISIBLE_CATEGORIES)
    return " ".join(visible.split())


class TextRules:
    def __init__(self, *, max_chars: int = DEFAULT_MAX_CHARS, deny_patterns: Sequence[str] = ()) -> None:
        if max_chars < 1:
            raise TextRulesMisconfigured("the text length limit must be at least 1 character")
        self.max_chars = max_chars
        self.deny_rules = tuple(self._compile(number, source) for number, source in enumerate(deny_patterns, 1))

    @staticmethod
    def _compile(number: int, source: str) -> DenyRule:
        try:
            # Patterns are written against the normalised (case-folded) text.
            return DenyRule(name=f"deny-{number}", pattern=re.compile(source))
        except re.error as exc:
            raise TextRulesMisconfigured(f"deny pattern {number} is not a valid regular expression: {exc}") from exc

    def check(self, text: str) -> str:
        """The text, stripped, if every rule passes; otherwise a specific `TextRejected`."""
        stripped = text.strip()
        if not stripped:
            raise TextEmpty("the text is empty")
        if len(stripped) > self.max_chars:
            raise TextTooLong(f"the text has {len(stripped)} characters; the limit is {self.max_chars}")
        for char in stripped:
            category = unicodedata.category(char)
            if (category == "Cc" and char not in "\n\t\r") or category == "Cs":
                raise TextInvalid(f"the text contains a control character U+{ord(char):04X}")
        normalised = normalise_for_matching(stripped)
        for rule in self.deny_rules:
            if rule.pattern.search(normalised):
                raise TextDenied(f"the text matches the operator's rule {rule.name}")
        return stripped
