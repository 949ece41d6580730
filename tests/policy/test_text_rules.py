"""Text rules: length limit, deny patterns, and the evasions they must survive."""

from __future__ import annotations

import pytest

from policy.text_rules import TextDenied, TextEmpty, TextInvalid, TextRules, TextRulesMisconfigured, TextTooLong

RULES = TextRules(max_chars=200, deny_patterns=[r"\bwire (the )?money\b", r"\bthis is your bank\b"])


def test_allows_ordinary_text_and_strips_it():
    assert RULES.check("  Hello, this is a birthday message.  ") == "Hello, this is a birthday message."


def test_rejects_empty_text():
    with pytest.raises(TextEmpty):
        RULES.check(" \n\t ")


def test_rejects_overlong_text():
    with pytest.raises(TextTooLong):
        RULES.check("a" * 201)


def test_rejects_control_characters():
    with pytest.raises(TextInvalid):
        RULES.check("hello\x00world")


def test_denies_matching_text_without_echoing_it():
    with pytest.raises(TextDenied) as error:
        RULES.check("Please wire the money today")
    assert "wire" not in str(error.value)


def test_rejects_deny_pattern_evaded_with_case_and_spacing():
    with pytest.raises(TextDenied):
        RULES.check("WIRE   the\nMONEY now")


def test_rejects_deny_pattern_evaded_with_zero_width_characters():
    with pytest.raises(TextDenied):
        RULES.check("wi\u200bre the mo\u200dney")


def test_rejects_deny_pattern_evaded_with_fullwidth_letters():
    with pytest.raises(TextDenied):
        RULES.check("ｔｈｉｓ ｉｓ ｙｏｕｒ ｂａｎｋ calling")


def test_invalid_pattern_is_a_configuration_error():
    with pytest.raises(TextRulesMisconfigured):
        TextRules(deny_patterns=["(unclosed"])
