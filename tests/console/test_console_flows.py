"""The console in a real Chromium against a real gateway: a voice owner enrolls by microphone
(the consent statement truly recorded through getUserMedia + MediaRecorder and uploaded as the
browser's webm/opus), then the other roles' flows run on that voice."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import time

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from policy.blocklist.review import hold_for_review
from policy.errors import SpeakerReviewRequired
from tests.console.conftest import UI_TIMEOUT_MS, sign_in
from tests.gateway.speech import PHRASES, REFERENCE_TEXT, pin_phrase, speak, wav_bytes

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def shared() -> dict:
    """What one flow leaves for the next: the enrolled voice, the produced file."""
    return {}


@pytest.fixture(scope="module")
def context(browser, gateway):
    context = browser.new_context(base_url=gateway.base_url, viewport={"width": 1100, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    yield context
    context.close()


def test_owner_enrolls_a_voice_by_microphone(context, gateway, microphone, shared, tmp_path):
    page = context.new_page()
    sign_in(page, subject="alice", name="Alice", roles=("owner",))
    page.get_by_role("link", name="New voice").click()
    page.get_by_role("button", name="Get my statement").click()
    page.locator("#statement-preview").wait_for()
    challenge_id = page.locator("[data-challenge-id]").get_attribute("data-challenge-id")
    assert page.locator("#statement mark").count() == 0  # the words stay hidden until the microphone opens

    # References first: once the words are revealed, the recording has a short window to arrive.
    reference = tmp_path / "reference.wav"
    reference.write_bytes(wav_bytes(*speak(REFERENCE_TEXT)))
    page.get_by_label("Upload references").set_input_files(str(reference))
    page.get_by_text(re.compile(r"s of audio in 1 file\(s\) — enough")).wait_for()

    # The drawn phrase is replaced by one the Piper voice reads reliably (tests/gateway/speech.py).
    engine = create_engine(gateway.database_url())
    with Session(engine) as session:
        text = pin_phrase(session, challenge_id=challenge_id, phrase=PHRASES[0])
    engine.dispose()
    audio, rate = speak(text)
    microphone.plays(wav_bytes(audio, rate))

    page.get_by_role("button", name="Record the statement").click()
    stop = page.get_by_role("button", name="Stop recording the statement")
    page.locator("#statement mark").first.wait_for()
    assert [m.inner_text().strip(".,") for m in page.locator("#statement mark").all()] == list(
        PHRASES[0]
    )  # revealed now
    page.wait_for_timeout(int(1000 * len(audio) / rate) + 800)
    level = int(page.get_by_role("meter", name="the statement: input level").get_attribute("aria-valuenow"))
    assert 0 <= level <= 100
    stop.click()
    page.get_by_label("the statement: playback").wait_for()

    page.get_by_role("button", name="Submit my voice").click()
    # Enrollment runs every consent check on a 2-core machine: allow it time, stop at a refusal.
    page.locator("#enroll-status .error, h2.ok").first.wait_for(timeout=240_000)
    assert page.get_by_role("heading", name="Your voice is enrolled").count(), page.locator(
        "#enroll-status"
    ).inner_text()
    voice_link = page.locator("dd a.mono")
    assert re.fullmatch(r"[0-9a-f]{32}", voice_link.inner_text())
    shared["voice_id"] = voice_link.inner_text()
    page.close()


def test_client_synthesizes_plays_and_downloads(context, shared, tmp_path_factory):
    page = context.new_page()
    sign_in(page, subject="studio-app", name="Studio", roles=("client",), tenant="acme")
    page.get_by_label("Voice", exact=True).select_option(shared["voice_id"])
    page.get_by_label("Text", exact=True).fill("Chapter one. The morning train was late again.")
    assert page.get_by_label("Purpose", exact=True).input_value() == "audiobook"  # from the consent's terms
    page.get_by_role("button", name="Synthesize").click()
    player = page.get_by_label("Synthesized speech")
    player.wait_for(timeout=180_000)
    duration = player.evaluate(
        "a => new Promise(r => a.readyState >= 1 ? r(a.duration) : a.addEventListener('loadedmetadata', () => r(a.duration)))"
    )
    assert duration > 1.0
    assert player.evaluate("a => a.play().then(() => true)")
    for header in ("X-Clonegate-Audit-Id", "X-Clonegate-Content-Id", "X-Clonegate-Watermark-Id"):
        assert page.locator(f"[data-trace='{header}']").inner_text().strip()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    produced = tmp_path_factory.mktemp("produced") / "speech.wav"
    download.value.save_as(produced)
    assert produced.read_bytes()[:4] == b"RIFF"
    shared["produced"] = produced
    shared["audit_id"] = page.locator("[data-trace='X-Clonegate-Audit-Id']").inner_text().strip()
    page.close()


def test_detect_shows_the_marked_segments_and_the_source_request(context, shared):
    page = context.new_page()
    sign_in(page, subject="inspector", name="Inspector", roles=("auditor",))
    page.get_by_role("link", name="Detect").click()
    page.get_by_label("Suspect audio file").set_input_files(str(shared["produced"]))
    page.get_by_role("button", name="Check for a watermark").click()
    page.get_by_role("heading", name=re.compile("Watermark found")).wait_for(timeout=180_000)
    segments = int(
        re.match(r"(\d+) marked segment", page.get_by_text(re.compile("marked segment")).inner_text()).group(1)
    )
    assert segments >= 1
    source = page.locator("#source")
    assert shared["audit_id"] in source.inner_text()
    assert "tenant acme" in source.inner_text()
    assert (
        "does not mean" in page.locator("#not-evidence").inner_text()
        or "not evidence" in page.locator("#not-evidence").inner_text()
    )
    page.close()


def test_anonymous_detection_shows_no_source(context, shared):
    page = context.new_page()
    page.goto("/console/#/detect")
    page.wait_for_selector("body[data-ready=true]")
    if page.get_by_role("button", name="Sign out").count():
        page.get_by_role("button", name="Sign out").click()
        page.goto("/console/#/detect")
    page.get_by_label("Suspect audio file").set_input_files(str(shared["produced"]))
    page.get_by_role("button", name="Check for a watermark").click()
    page.get_by_role("heading", name=re.compile("Watermark found")).wait_for(timeout=180_000)
    assert "shown to auditors and to its tenant" in page.get_by_text(re.compile("names a request")).inner_text()
    page.close()


def test_owner_revokes_and_synthesis_is_refused(context, shared):
    page = context.new_page()
    sign_in(page, subject="alice", name="Alice", roles=("owner",))
    page.get_by_role("link", name=shared["voice_id"]).click()
    page.get_by_role("heading", name="Usage ledger").wait_for()
    assert page.get_by_role("img", name=re.compile("Uses per day")).count() == 1  # the chart of the one use
    page.get_by_role("button", name="Revoke consent for acme").click()
    page.get_by_text(re.compile("Consent for acme revoked")).wait_for()

    sign_in(page, subject="studio-app", name="Studio", roles=("client",), tenant="acme")
    page.get_by_role("heading", name="New synthesis").wait_for()
    assert page.get_by_text("No voice is granted to you yet").count() == 1
    # The voice is no longer listed: ask for it by id, as a client holding an old link would.
    page.get_by_label("Voice", exact=True).evaluate(
        "(select, id) => select.append(new Option(id, id, true, true))", shared["voice_id"]
    )
    page.get_by_label("Text", exact=True).fill("One more chapter.")
    page.get_by_label("Purpose", exact=True).fill("audiobook")
    page.get_by_role("button", name="Synthesize").click()
    refusal = page.locator("#synth-status .error")
    refusal.wait_for()
    assert "{" not in refusal.inner_text() and "revoked" in refusal.inner_text().lower()
    page.close()


def test_auditor_exports_a_bundle_that_verifies_offline(context, gateway, tmp_path):
    page = context.new_page()
    sign_in(page, subject="inspector", name="Inspector", roles=("auditor",))
    page.get_by_role("link", name="Audit log").click()
    page.get_by_role("heading", name="Signed checkpoint").wait_for()
    page.get_by_label("Action", exact=True).select_option("consent.revoked")
    page.get_by_role("button", name="Show events").click()
    page.locator("#events td", has_text="consent.revoked").wait_for()
    page.get_by_label("Action", exact=True).select_option("")
    page.get_by_role("button", name="Show events").click()
    page.get_by_role("button", name="Inclusion proof of event 0").click()
    page.get_by_role("heading", name="Inclusion proof of event 0").wait_for()
    page.get_by_role("button", name="Export a bundle").click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download audit-bundle.tar").click()
    bundle = tmp_path / "audit-bundle.tar"
    download.value.save_as(bundle)
    assert tarfile.is_tarfile(bundle)
    key = tmp_path / "public-key.txt"
    key.write_text(httpx.get(f"{gateway.base_url}/v1/audit/public-key").text)
    verified = subprocess.run(
        [sys.executable, "-m", "gateway.cli_audit", "verify", str(bundle), "--key", str(key)],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    page.close()


def test_admin_approves_a_held_review_after_listening_to_its_references(context, gateway, shared, speech_dir):
    page = context.new_page()
    sign_in(page, subject="operator", name="Operator", roles=("admin",))
    page.get_by_label("Name", exact=True).fill("Famous Narrator")
    page.get_by_label("Reason", exact=True).fill("public figure")
    page.get_by_label("Source", exact=True).fill("press recordings")
    page.get_by_label("Recordings", exact=True).set_input_files(str(speech_dir / "en_harold.wav"))
    page.get_by_role("button", name="Add to the list").click()
    page.get_by_text(re.compile(r"Entry \d+ \(Famous Narrator\) is on the list")).wait_for(timeout=120_000)
    entry_id = int(re.search(r"Entry (\d+)", page.get_by_text(re.compile("is on the list")).inner_text()).group(1))
    # A hold as the synthesis pipeline leaves it for a voice near an entry (the score band is
    # hard to hit on purpose; tests/gateway/test_blocklist_routes.py does the same).
    engine = create_engine(gateway.database_url())
    with Session(engine) as session:
        held = SpeakerReviewRequired("held", entry_id=entry_id, raw_score=0.7, normalized_score=3.0, stage="synthesis")
        item = hold_for_review(
            session,
            held=held,
            voice_id=shared["voice_id"],
            request_ref="req-1",
            requester_iss="https://dev.clonegate.invalid",
            requester_sub="studio-app",
            tenant="acme",
        )
        session.commit()
        review_id = item.id
    engine.dispose()
    page.reload()
    page.get_by_role("link", name=f"Review {review_id}").click()
    page.get_by_role("heading", name="Listen to the held voice").wait_for()
    page.get_by_role("button", name=re.compile("Load reference 1")).click()
    reference = page.get_by_label("Reference 1 of the held voice")
    reference.wait_for()
    assert (
        reference.evaluate(
            "a => new Promise(r => a.readyState >= 1 ? r(a.duration) : a.addEventListener('loadedmetadata', () => r(a.duration)))"
        )
        > 5
    )
    page.get_by_label("Note", exact=True).fill("a different person: the narrator's voice is deeper")
    page.get_by_role("button", name="Approve").click()
    page.get_by_text(re.compile("approved")).first.wait_for()
    token = page.evaluate("sessionStorage.getItem('clonegate.token')")
    assert listened(gateway, token) == ["operator"]
    page.close()


def listened(gateway, token: str) -> list[str]:
    """Who played a held voice's references, as the audit log says (it integrates each second)."""
    for _ in range(30):
        events = httpx.get(
            f"{gateway.base_url}/v1/audit/events",
            params={"action": "review.references_played"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["events"]
        if events:
            return [e["event"]["actor"]["sub"] for e in events]
        time.sleep(0.5)
    return []
