// Client (tenant): the voices granted to me with their scopes, and a synthesize form with a
// player, a download, streamed playback for long text, and the ids that trace the result.
import { api, request } from "../api.js";
import { h, field, showIn, facts, table, when, busy, downloadLink } from "../ui.js";
import { playWavStream } from "../stream.js";

const TRACE_HEADERS = [
  ["Audit id", "X-Clonegate-Audit-Id"],
  ["Release audit id", "X-Clonegate-Release-Audit-Id"],
  ["Content id", "X-Clonegate-Content-Id"],
  ["Watermark id", "X-Clonegate-Watermark-Id"],
  ["Consent id", "X-Clonegate-Consent-Id"],
];

export async function render(main) {
  showIn(main, h("h1", { text: "Synthesize" }), h("p", { text: "Loading your voices…" }));
  const { voices } = await api.get("/v1/voices");
  const detailed = await Promise.all(voices.map((v) => api.get(`/v1/voices/${v.voice_id}`)));
  const grants = detailed.flatMap((v) => v.consents.filter((c) => !c.revoked_at).map((c) => ({ voice: v, consent: c })));
  const rows = grants.map(({ voice, consent }) => [
    h("span", { class: "mono", text: voice.voice_id }),
    voice.owner_name,
    consent.purposes.join(", "),
    consent.languages.join(", "),
    `until ${when(consent.not_after)}`,
    `${consent.uses} of ${consent.max_uses}`,
  ]);
  showIn(
    main,
    h("h1", { text: "Synthesize" }),
    h("h2", { text: "Voices granted to you" }),
    grants.length ? table(["Voice", "Owner", "Purposes", "Languages", "Valid", "Uses"], rows, "Voices granted to you") : h("p", { text: "No voice is granted to you yet: a voice owner must consent to your tenant." }),
    synthesizeForm(detailed),
  );
}

function synthesizeForm(voices) {
  const voice = h("select", { name: "voice_id" }, voices.map((v) => h("option", { value: v.voice_id, text: `${v.owner_name} (${v.voice_id.slice(0, 8)}…)` })));
  const text = h("textarea", { name: "text", required: true, maxlength: "100000" });
  const purpose = h("input", { name: "purpose", required: true });
  const language = h("input", { name: "language", required: true, value: "en" });
  const format = h("select", { name: "format" }, ["wav", "flac", "mp3", "ogg"].map((f) => h("option", { value: f, text: f })));
  const speed = h("input", { type: "number", name: "speed", min: "0.5", max: "2", step: "0.05", value: "1" });
  const stream = h("input", { type: "checkbox", name: "stream" });
  const submit = h("button", { type: "submit", text: "Synthesize" });
  const status = h("div", { "aria-live": "polite", id: "synth-status" });
  const result = h("div", { id: "synth-result" });
  const suggestPurpose = () => {
    const chosen = voices.find((v) => v.voice_id === voice.value);
    const live = chosen && chosen.consents.find((c) => !c.revoked_at);
    if (live && !purpose.value) purpose.value = live.purposes[0];
  };
  voice.addEventListener("change", () => { purpose.value = ""; suggestPurpose(); });
  suggestPurpose();
  const form = h("form", {
    onsubmit: (event) => {
      event.preventDefault();
      busy(submit, status, async () => {
        showIn(result);
        const body = {
          voice_id: voice.value,
          text: text.value,
          purpose: purpose.value.trim(),
          language: language.value.trim(),
          format: stream.checked ? "wav" : format.value,
          speed: Number(speed.value),
        };
        const path = stream.checked ? "/v1/synthesize?stream=true" : "/v1/synthesize";
        const response = await request("POST", path, { json: body, raw: true });
        const trace = facts(TRACE_HEADERS.map(([label, header]) => [label, h("span", { class: "mono", "data-trace": header, text: response.headers.get(header) || "" })]));
        const player = h("div", {});
        showIn(result, h("h2", { text: "Result" }), h("p", { text: "AI-generated speech, watermarked and logged." }), player, trace);
        const blob = stream.checked ? await playWavStream(response, player) : await response.blob();
        showIn(player, h("audio", { controls: true, src: URL.createObjectURL(blob), "aria-label": "Synthesized speech" }),
          h("div", { class: "row" }, downloadLink(blob, `speech.${body.format}`, "Download")));
      });
    },
  },
  field("Voice", voice),
  field("Text", text),
  field("Purpose", purpose, "One of the purposes the consent names."),
  field("Language", language),
  field("Format", format),
  field("Speed", speed, "0.5 to 2."),
  h("label", { class: "inline" }, stream, "Stream: start playing while the rest is made (WAV)"),
  h("div", { class: "row" }, submit), status, result);
  return h("section", {}, h("h2", { text: "New synthesis" }), form);
}
