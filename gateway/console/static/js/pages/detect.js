// Detect: was this audio marked by this gateway, where, and (for callers allowed to know) by
// which request, with the proof that request is in the audit log.
import { api } from "../api.js";
import { h, field, showIn, facts, table, busy } from "../ui.js";
import { recorderPanel } from "../recorder.js";
import { drawWaveform } from "../waveform.js";

const NO_MARK_SENTENCE = "No mark found does not mean the audio is human: it may come from another generator, or its mark may have been destroyed.";

export function render(main, { me }) {
  let recorded = null;
  const upload = h("input", { type: "file", name: "audio", accept: "audio/*,.wav,.flac,.mp3,.ogg,.webm,.m4a" });
  const recorder = recorderPanel({ label: "suspect audio", onRecorded: (blob) => { recorded = blob; upload.value = ""; } });
  const submit = h("button", { type: "button", text: "Check for a watermark" });
  const status = h("div", { "aria-live": "polite" });
  const result = h("div", { id: "detect-result" });
  submit.addEventListener("click", () =>
    busy(submit, status, async () => {
      const file = upload.files[0] || recorded;
      if (!file) throw new Error("Choose a file or record the audio first.");
      const form = new FormData();
      form.append("audio", file, file.name || "recording.webm");
      showIn(result);
      const answer = await api.postForm("/v1/detect", form);
      showIn(result, await renderAnswer(answer, file));
    }),
  );
  showIn(
    main,
    h("h1", { text: "Detect" }),
    h("p", { text: "Check whether a recording carries this gateway's watermark, where in the recording, and which request made it." }),
    me ? null : h("p", { class: "hint", text: "You are not signed in: the verdict is shown, the producing request is not." }),
    field("Suspect audio file", upload),
    h("p", { text: "or record it (for example, a call played on a speaker):" }),
    recorder,
    h("div", { class: "row" }, submit),
    status,
    result,
  );
}

async function renderAnswer(answer, file) {
  const verdict = answer.verdict || {};
  const canvas = h("canvas", { width: "900", height: "120", role: "img", "aria-label": "Waveform with the marked segments" });
  const segments = answer.schemes.flatMap((s) => s.segments.map(([start, end, score]) => ({ scheme: s.name, start, end, score })));
  await drawWaveform(canvas, file, segments);
  const schemeRows = answer.schemes.map((s) => [
    s.name,
    s.detected ? h("span", { class: "ok", text: "mark found" }) : "no mark",
    String(s.score),
    s.false_positive_probability === null ? "not computed" : s.false_positive_probability.toExponential(2),
    s.payload_verified ? "verified" : s.payload_source || (s.payload ? "unverified" : "none"),
    s.segments.map(([a, b]) => `${a.toFixed(1)}–${b.toFixed(1)} s`).join(", ") || "—",
  ]);
  const keyed = answer.schemes.find((s) => s.name === "keyed") || answer.schemes[0];
  return h(
    "section",
    { "aria-labelledby": "verdict-heading" },
    h("h2", { id: "verdict-heading", tabindex: "-1", class: answer.detected ? "bad" : "", text: answer.detected ? "Watermark found: this audio was made by this gateway" : "No watermark of this gateway found" }),
    verdict.statement ? h("p", { text: verdict.statement }) : null,
    facts([
      ["False-positive probability", keyed && keyed.false_positive_probability !== null ? keyed.false_positive_probability.toExponential(2) : "not computed"],
      ["Duration", `${answer.duration_seconds} s`],
      ["Verdict rests on", (answer.verdict_basis || []).join(", ") || "no layer"],
    ]),
    canvas,
    h("p", { class: "hint", text: `${segments.length} marked segment(s) drawn on the waveform.` }),
    h("h2", { text: "Each scheme" }),
    table(["Scheme", "Result", "Score", "False-positive probability", "Payload", "Marked segments"], schemeRows, "Each watermark scheme's result"),
    h("h2", { text: "Source request" }),
    sourceSection(answer.source),
    h("p", { class: "panel", id: "not-evidence", text: verdict.not_evidence_of_human_origin || NO_MARK_SENTENCE }),
    verdict.also_check && verdict.also_check.length ? h("div", {}, h("h2", { text: "Also check" }), h("ul", {}, verdict.also_check.map((t) => h("li", { text: t })))) : null,
  );
}

function sourceSection(source) {
  if (!source) return h("p", { text: "No request could be read from the mark." });
  if (source.status === "withheld") return h("p", { text: `The mark names a request of this gateway; ${source.detail}.` });
  if (source.status === "unknown") return h("p", { text: `The mark names audit event ${source.audit_id}, which this gateway's log does not hold.` });
  const event = source.event || {};
  const proof = source.inclusion_proof;
  return h(
    "div",
    { id: "source" },
    facts([
      ["Audit event", String(source.audit_id)],
      ["Action", event.action],
      ["Decision", event.decision],
      ["When", event.time],
      ["Who", event.actor ? `${event.actor.sub}${event.actor.tenant ? ` (tenant ${event.actor.tenant})` : ""}` : ""],
      ["Voice", event.subjects && event.subjects.voice_id],
      ["Consent", event.subjects && event.subjects.consent_id],
      ["Watermark id", event.watermark_id],
      ["Log position", String(source.leaf_index ?? "not yet in the log")],
    ]),
    proof
      ? h("details", {}, h("summary", { text: `Inclusion proof in a log of ${proof.tree_size} entries` }),
          facts([["Leaf hash", h("span", { class: "mono", text: proof.leaf_hash })], ["Proof", h("span", { class: "mono", text: proof.proof.join(" ") })]]),
          h("pre", { class: "mono", text: proof.checkpoint }))
      : h("p", { class: "hint", text: "The event is not yet under a signed checkpoint; try again in a few seconds for its proof." }),
  );
}
