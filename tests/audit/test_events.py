"""The event model and its canonical bytes (RFC 8785 subset)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from audit.canonical import canonical_json
from audit.errors import InvalidAuditEvent, NonCanonicalValue
from audit.events import Action, Actor, Aggregate, AuditEvent, Decision, Digests, EngineInfo, Subjects

ACTOR = Actor(iss="https://issuer.example", sub="svc-frontend", role="operator", tenant="acme")


def make_event(**overrides) -> AuditEvent:
    fields = dict(
        action=Action.REQUEST_ADMITTED,
        decision=Decision.ALLOW,
        actor=ACTOR,
        subjects=Subjects(voice_id="voice-1", consent_id="consent-9", request_id="req-42"),
        digests=Digests(text_sha256="a" * 64, reference_sha256=("b" * 64,)),
        engine=EngineInfo(name="piper", version="1.3.0"),
        time=datetime(2026, 11, 22, 23, 50, 1, 123456, tzinfo=UTC),
        event_id="0b9f5c1e-3f4a-4a51-9a40-2c1f7f0d2a11",
    )
    fields.update(overrides)
    return AuditEvent(**fields)


def test_rfc8785_member_order_is_by_utf16_code_units():
    # The sorting example of RFC 8785 section 3.2.3: U+1F600 (surrogates D83D DE00) sorts before U+FB33.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    encoded = canonical_json(value).decode()
    keys = list(json.loads(encoded))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert encoded.startswith('{"\\r":"Carriage Return","1":"One","\u0080":"Control"')


def test_rfc8785_string_escapes_and_literals():
    assert canonical_json({"b": [True, False, None], "a": '\u0007\b\t\n\f\r"\\/\u007f\u2028'}) == (
        '{"a":"\\u0007\\b\\t\\n\\f\\r\\"\\\\/\u007f\u2028","b":[true,false,null]}'.encode()
    )
    assert canonical_json([0, -1, 2**53 - 1]) == b"[0,-1,9007199254740991]"


@pytest.mark.parametrize("bad", [1.5, float("nan"), 2**53, {1: "x"}, "\ud800", b"bytes", {"a": {1, 2}}])
def test_non_canonical_values_are_refused(bad):
    with pytest.raises(NonCanonicalValue):
        canonical_json(bad)


def test_event_round_trips_through_canonical_bytes():
    event = make_event()
    entry = event.canonical_bytes()
    assert AuditEvent.from_canonical_bytes(entry) == event
    assert json.loads(entry)["time"] == "2026-11-22T23:50:01.123456Z"
    assert entry == canonical_json(json.loads(entry))


def test_event_time_is_stored_in_utc():
    local = datetime(2026, 11, 23, 0, 50, 1, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert make_event(time=local).canonical_bytes() == make_event().canonical_bytes()


def test_naive_time_is_refused():
    with pytest.raises(InvalidAuditEvent):
        make_event(time=datetime(2026, 1, 1))


def test_free_text_cannot_be_smuggled_into_identifiers():
    with pytest.raises(InvalidAuditEvent):
        make_event(subjects=Subjects(voice_id="Hello, this is the text the user asked to clone"))
    with pytest.raises(InvalidAuditEvent):
        make_event(reason="Consent revoked by Jane Doe on the phone")


def test_raw_text_in_a_digest_field_is_refused():
    with pytest.raises(InvalidAuditEvent):
        make_event(digests=Digests(text_sha256="please say: transfer the money"))


def test_a_denial_needs_a_reason_code():
    with pytest.raises(InvalidAuditEvent):
        make_event(action=Action.REQUEST_DENIED, decision=Decision.DENY)
    event = make_event(action=Action.REQUEST_DENIED, decision=Decision.DENY, reason="speaker_protected")
    assert json.loads(event.canonical_bytes())["reason"] == "speaker_protected"


def test_unknown_action_and_unknown_fields_are_refused():
    with pytest.raises(InvalidAuditEvent):
        make_event(action="request.teleported")
    data = make_event().to_dict()
    data["embedding"] = [1, 2, 3]
    with pytest.raises(InvalidAuditEvent):
        AuditEvent.from_dict(data)


def test_non_canonical_entry_is_refused():
    entry = make_event().canonical_bytes()
    spaced = json.dumps(json.loads(entry), indent=1).encode()
    with pytest.raises(InvalidAuditEvent):
        AuditEvent.from_canonical_bytes(spaced)


def test_schema_version_is_checked():
    data = make_event().to_dict()
    data["v"] = 2
    with pytest.raises(InvalidAuditEvent):
        AuditEvent.from_dict(data)


def test_fast_encoding_equals_the_general_canonicalizer():
    variants = [
        make_event(),
        make_event(action=Action.REQUEST_DENIED, decision=Decision.DENY, reason="speaker_protected", engine=None),
        make_event(
            actor=Actor(iss="auth0|x", sub="a~b#c", role="admin"),
            subjects=Subjects(),
            digests=Digests(reference_sha256=("c" * 64, "d" * 64), output_sha256="e" * 64),
            watermark_id="wm:42",
        ),
    ]
    for event in variants:
        assert event.canonical_bytes() == canonical_json(event.to_dict())


def _aggregated(count: int = 200) -> AuditEvent:
    since = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    return AuditEvent(
        action=Action.REQUEST_RATE_LIMITED,
        decision=Decision.DENY,
        reason="tenant_synthesis_requests_per_minute",
        actor=Actor(iss="https://issuer.example", sub="studio-1", role="client", tenant="acme"),
        aggregate=Aggregate(count=count, since=since, until=since + timedelta(seconds=59)),
    )


def test_aggregated_event_round_trips_and_others_keep_their_bytes():
    event = _aggregated()
    entry = event.canonical_bytes()
    assert AuditEvent.from_canonical_bytes(entry) == event
    assert json.loads(entry)["aggregate"] == {
        "count": 200,
        "since": "2026-12-02T01:00:00.000000Z",
        "until": "2026-12-02T01:00:59.000000Z",
    }
    assert entry == canonical_json(event.to_dict())
    # An event without an aggregate has no such member: entries logged before it existed still verify.
    assert "aggregate" not in json.loads(make_event().canonical_bytes())


@pytest.mark.parametrize("count", [0, -1, True, 2**53])
def test_aggregate_count_must_be_a_positive_integer(count):
    with pytest.raises(InvalidAuditEvent, match=r"aggregate\.count"):
        _aggregated(count)


def test_null_aggregate_member_is_refused_as_non_canonical():
    data = json.loads(make_event().canonical_bytes())
    data["aggregate"] = None
    with pytest.raises(InvalidAuditEvent, match="aggregate"):
        AuditEvent.from_canonical_bytes(canonical_json(data))
