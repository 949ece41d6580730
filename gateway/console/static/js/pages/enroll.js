// The new-voice flow: terms → the statement (the four words highlighted, a countdown) →
// record it → references (recorded or uploaded, with a live count of seconds) → submit → result.
import { api } from "../api.js";
import { h, field, showIn, errorBox, facts, busy } from "../ui.js";
import { recorderPanel, durationOf, extensionFor } from "../recorder.js";

const MIN_REFERENCE_SECONDS = 10;

// What to do next after each refusal, in plain words (the API's own sentence is shown above it).
const NEXT_STEP = {
  speech_recognition_failed: "Record the statement again in a quiet room, close to the microphone, reading every word.",
  consent_statement_mismatch: "Record again and read the whole statement as it is written.",
  consent_phrase_mismatch: "Record again and say the four highlighted words clearly, in order.",
  consent_speaker_mismatch: "The statement and the references must be the same person: use recordings of your own voice only.",
  consent_recording_synthetic: "Record the statement live with your own voice; a generated or played-back voice is refused.",
  consent_recording_replayed: "Each statement can be recorded once: start again with a new voice to get a new statement.",
  consent_recording_late: "The recording must follow the reveal of the words quickly: start again to get a new statement.",
  consent_words_not_revealed: "Open the microphone from this page so the words are revealed, then record.",
  challenge_expired: "The statement expired: start again to get a new one.",
  challenge_already_used: "This statement was already used: start again to get a new one.",
  reference_quality: "Use clearer references: one speaker, little noise, no clipping, at least 10 s of speech.",
  too_little_speech: "Add more references: at least 10 s of speech in all.",
  snr_too_low: "Record the references in a quieter place.",
  too_much_clipping: "Record the references a little further from the microphone.",
  speaker_protected: "This voice matches a protected speaker and cannot be cloned. If it is your own voice, ask the operator.",
  speaker_review_required: "This voice resembles a protected speaker: an admin reviews it, and you are told the decision.",
  identity_assurance_required: "Sign in with a verified identity to consent to a clone of your voice.",
};

export function highlightedStatement(statement, phrase) {
  const box = h("p", { class: "statement", id: "statement" });
  const words = new Set(phrase.map((w) => w.toLowerCase()));
  for (const part of statement.split(/(\s+)/)) {
    const bare = part.replace(/[^A-Za-z'-]/g, "").toLowerCase();
    box.append(words.has(bare) ? h("mark", { text: part }) : document.createTextNode(part));
  }
  return box;
}

function countdown(deadline, label, onExpire) {
  const el = h("p", { class: "countdown", "aria-live": "off" });
  const tick = () => {
    if (el.dataset.started && !document.body.contains(el)) return clearInterval(timer);
    el.dataset.started = "1";
    const left = Math.max(0, Math.round((new Date(deadline) - Date.now()) / 1000));
    el.textContent = left ? `${label}: ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` : "Time is up: start again to get a new statement.";
    if (!left) {
      clearInterval(timer);
      onExpire?.();
    }
  };
  const timer = setInterval(tick, 1000);
  tick();
  return el;
}

// References: record takes or choose files; shows the seconds of speech so far.
export function referencePicker({ label = "references" } = {}) {
  const items = [];
  const list = h("ul", {});
  const total = h("p", { class: "hint", "aria-live": "polite", id: `${label.replace(/\s/g, "-")}-total` });
  const refresh = () => {
    const seconds = items.reduce((sum, item) => sum + (item.seconds || 0), 0);
    total.textContent = `${seconds.toFixed(1)} s of audio in ${items.length} file(s)` + (seconds >= MIN_REFERENCE_SECONDS ? " — enough." : ` — at least ${MIN_REFERENCE_SECONDS} s are needed.`);
    total.className = seconds >= MIN_REFERENCE_SECONDS ? "ok" : "hint";
    showIn(list, items.map((item, i) => h("li", {}, `${item.name} (${item.seconds ? item.seconds.toFixed(1) : "?"} s) `,
      h("button", { type: "button", class: "secondary", text: "Remove", "aria-label": `Remove ${item.name}`, onclick: () => { items.splice(i, 1); refresh(); } }))));
  };
  const upload = h("input", { type: "file", accept: "audio/*,.wav,.flac,.mp3,.ogg,.webm,.m4a", multiple: true, name: "references" });
  upload.addEventListener("change", async () => {
    for (const file of upload.files) items.push({ blob: file, name: file.name, seconds: await durationOf(file) });
    upload.value = "";
    refresh();
  });
  const recorder = recorderPanel({
    label: `a ${label.replace(/s$/, "")}`,
    onRecorded: (blob, seconds) => {
      items.push({ blob, name: `recorded-${items.length + 1}.${extensionFor(blob.type)}`, seconds });
      refresh();
    },
  });
  refresh();
  return {
    element: h("div", {}, field(`Upload ${label}`, upload, "Recordings of your own voice, any common audio format."), h("p", { text: "or record one:" }), recorder, list, total),
    files: () => items,
  };
}

function termsForm(onIssued) {
  const inDays = (d) => new Date(Date.now() + d * 864e5).toISOString().slice(0, 10);
  const kind = h("select", { name: "grantee_kind" }, h("option", { value: "tenant", text: "a tenant (an organisation)" }), h("option", { value: "subject", text: "a person (a subject)" }));
  const granteeId = h("input", { name: "grantee_id", required: true, value: "acme" });
  const granteeName = h("input", { name: "grantee_name", required: true, value: "Acme Studios" });
  const purposes = h("input", { name: "purposes", required: true, value: "audiobook" });
  const languages = h("input", { name: "languages", required: true, value: "en" });
  const notAfter = h("input", { type: "date", name: "not_after", required: true, value: inDays(30), min: inDays(1) });
  const maxUses = h("input", { type: "number", name: "max_uses", required: true, min: "1", value: "100" });
  const status = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit", text: "Get my statement" });
  const list = (input) => input.value.split(",").map((s) => s.trim()).filter(Boolean);
  const form = h("form", {
    onsubmit: (event) => {
      event.preventDefault();
      busy(submit, status, async () => {
        const challenge = await api.post("/v1/consent/challenges", {
          grantee_kind: kind.value,
          grantee_id: granteeId.value.trim(),
          grantee_name: granteeName.value.trim(),
          purposes: list(purposes),
          languages: list(languages),
          not_after: new Date(`${notAfter.value}T23:59:59`).toISOString(),
          max_uses: Number(maxUses.value),
        });
        onIssued(challenge);
      });
    },
  },
  field("Who may use the voice", kind),
  field("Grantee id", granteeId, "The tenant or subject id the grantee signs in with."),
  field("Grantee name", granteeName, "The name your statement says aloud."),
  field("Purposes", purposes, "Comma-separated words, e.g. audiobook, podcast."),
  field("Languages", languages, "Comma-separated language codes, e.g. en, de."),
  field("Valid until", notAfter),
  field("Uses", maxUses, "How many syntheses the grantee may make."),
  h("div", { class: "row" }, submit), status);
  return form;
}

export function renderNewVoice(main, { me }) {
  const stage = h("div", {});
  showIn(main, h("h1", { text: "New voice" }), h("p", {}, h("a", { href: "#/owner", text: "← My voices" })),
    h("p", { text: `${me.display_name || me.subject}, you are about to consent to a clone of your voice. First, the terms:` }), stage);
  showIn(stage, termsForm((challenge) => recordStage(stage, challenge)));
}

function recordStage(stage, challenge) {
  let consentBlob = null;
  let phrase = null;
  const submit = h("button", { type: "button", text: "Submit my voice", disabled: true });
  const statementSlot = h("div", {}, h("p", { class: "statement", id: "statement-preview", text: challenge.statement_preview }),
    h("p", { class: "hint", text: `The ${challenge.phrase_words} confirmation words (shown as …) appear when the microphone opens. From then on the recording must reach the gateway within a short window, so add your references first.` }));
  const clock = h("div", {}, countdown(challenge.expires_at, "Time left to start recording", () => { submit.disabled = true; }));
  const references = referencePicker();
  const status = h("div", { "aria-live": "polite", id: "enroll-status" });
  const ready = () => { submit.disabled = !consentBlob; };
  const recorder = recorderPanel({
    label: "the statement",
    // Consent liveness: the gateway reveals the four words only now, with the microphone open,
    // and starts the window within which the recording must arrive.
    onOpen: async () => {
      if (phrase) return;
      const revealed = await api.post(`/v1/consent/challenges/${challenge.challenge_id}/reveal`);
      phrase = revealed.phrase;
      showIn(statementSlot, highlightedStatement(revealed.statement, phrase));
      showIn(clock, countdown(revealed.recording_due_by, "Time left to record and submit", () => { submit.disabled = true; }));
    },
    onRecorded: (blob) => { consentBlob = blob; ready(); submit.focus(); },
    onReset: () => { consentBlob = null; ready(); },
  });
  submit.addEventListener("click", () =>
    busy(submit, null, async () => {
      showIn(status, h("p", { role: "status", text: "Checking your recordings… this takes a little while." }));
      try {
        const files = references.files();
        if (!files.length) throw new Error("Add at least one reference recording (10 s of speech or more).");
        const form = new FormData();
        form.append("challenge_id", challenge.challenge_id);
        form.append("consent_recording", consentBlob, `consent.${extensionFor(consentBlob.type)}`);
        files.forEach(({ blob, name }) => form.append("references", blob, name));
        const voice = await api.postForm("/v1/voices", form);
        showIn(stage, accepted(voice));
        stage.querySelector("h2").focus();
      } catch (error) {
        const next = NEXT_STEP[error.code];
        showIn(status, errorBox(error), next ? h("p", { text: `What to do next: ${next}` }) : null);
      }
    }),
  );
  showIn(stage,
    h("section", { "aria-labelledby": "step-refs" },
      h("h2", { id: "step-refs", text: "1. References of your voice" }),
      references.element),
    h("section", { "aria-labelledby": "step-statement" },
      h("h2", { id: "step-statement", text: "2. Read your statement aloud" }),
      h("p", { class: "hint", text: `Statement ${challenge.challenge_id}. Press Record, read it in your own voice, then Stop and submit.` }),
      statementSlot,
      clock,
      recorder),
    h("section", { "aria-labelledby": "step-submit" },
      h("h2", { id: "step-submit", text: "3. Submit" }),
      h("div", { class: "row" }, submit), status));
  stage.dataset.challengeId = challenge.challenge_id;
}

function accepted(voice) {
  return h("div", { class: "panel", role: "status" },
    h("h2", { class: "ok", text: "Your voice is enrolled", tabindex: "-1" }),
    facts([
      ["Voice", h("a", { href: `#/owner/voice/${voice.voice_id}`, class: "mono", text: voice.voice_id })],
      ["Consent", h("span", { class: "mono", text: voice.consent_id })],
      ["Statement check score", String(voice.statement_score)],
      ["Same-speaker similarity", String(voice.speaker_similarity)],
    ]),
    h("p", { text: "The grantee can now synthesize in this voice within the terms you set. You can revoke the consent at any time." }));
}
