// Admin: protected-speaker entries (add with audio, deactivate, exceptions), the review queue
// (scores, the entry, the held voice's own sealed references — never engine output — then
// approve or deny), opt-out entries, and the effective settings.
import { api, request } from "../api.js";
import { h, field, showIn, facts, table, busy, when } from "../ui.js";

export async function render(main, { args }) {
  if (args[0] === "review" && args[1]) return renderReview(main, Number(args[1]));
  if (args[0] === "entry" && args[1]) return renderEntry(main, Number(args[1]));
  showIn(main, h("h1", { text: "Admin" }), h("p", { text: "Loading…" }));
  const [{ reviews }, { entries }, settings] = await Promise.all([
    api.get("/v1/blocklist/reviews"),
    api.get("/v1/blocklist/entries?include_inactive=true"),
    api.get("/v1/admin/settings"),
  ]);
  const entryRow = (e) => [
    h("a", { href: `#/admin/entry/${e.entry_id}`, text: String(e.entry_id) }),
    e.name,
    e.kind,
    e.source,
    e.active ? "active" : `inactive since ${when(e.deactivated_at)}`,
    when(e.created_at),
  ];
  const optOuts = entries.filter((e) => e.kind !== "listed");
  showIn(
    main,
    h("h1", { text: "Admin" }),
    h("h2", { text: "Review queue" }),
    reviews.length
      ? table(["Item", "Stage", "Voice", "Protected entry", "Score", "Requester", "Held since"],
          reviews.map((r) => [h("a", { href: `#/admin/review/${r.review_id}`, text: `Review ${r.review_id}` }), r.stage, h("span", { class: "mono", text: r.voice_id }), String(r.entry_id), r.normalized_score.toFixed(2), `${r.requester_sub}${r.tenant ? ` (${r.tenant})` : ""}`, when(r.created_at)]),
          "Held requests awaiting a decision")
      : h("p", { text: "No request is waiting for review." }),
    h("h2", { text: "Protected speakers" }),
    table(["Entry", "Name", "Kind", "Source", "State", "Listed"], entries.filter((e) => e.kind === "listed").map(entryRow), "Protected speakers"),
    addEntryForm(main),
    h("h2", { text: "Opt-out requests" }),
    optOuts.length ? table(["Entry", "Name", "Kind", "Source", "State", "Listed"], optOuts.map(entryRow), "Owners who opted out") : h("p", { text: "No owner has opted out." }),
    h("h2", { text: "Effective settings" }),
    h("p", { class: "hint", text: "Secrets, key files and the database address are never shown." }),
    table(["Setting", "Value"], Object.entries(settings).map(([k, v]) => [h("code", { text: k }), h("span", { class: "mono", text: typeof v === "string" ? v : JSON.stringify(v) })]), "Effective settings"),
  );
}

function addEntryForm(main) {
  const name = h("input", { name: "name", required: true });
  const reason = h("input", { name: "reason", required: true });
  const source = h("input", { name: "source", required: true });
  const samples = h("input", { type: "file", name: "samples", accept: "audio/*", multiple: true, required: true });
  const submit = h("button", { type: "submit", text: "Add to the list" });
  const status = h("div", { "aria-live": "polite" });
  return h("form", {
    onsubmit: (e) => {
      e.preventDefault();
      busy(submit, status, async () => {
        const form = new FormData();
        form.append("name", name.value.trim());
        form.append("reason", reason.value.trim());
        form.append("source", source.value.trim());
        for (const file of samples.files) form.append("samples", file, file.name);
        const entry = await api.postForm("/v1/blocklist/entries", form);
        await render(main, { args: [] });
        showIn(main.querySelector("#entry-added") || main, h("p", { role: "status", class: "ok", text: `Entry ${entry.entry_id} (${entry.name}) is on the list.` }));
      });
    },
  },
  h("h3", { text: "Add a protected speaker" }),
  field("Name", name), field("Reason", reason), field("Source", source, "Where the recordings come from."),
  field("Recordings", samples, "Only their speaker embeddings and hashes are kept."),
  h("div", { class: "row" }, submit), status, h("div", { id: "entry-added" }));
}

async function renderEntry(main, entryId) {
  const entry = await api.get(`/v1/blocklist/entries/${entryId}`);
  const status = h("div", { "aria-live": "polite" });
  const reason = h("input", { name: "reason" });
  const deactivate = h("button", { type: "button", class: "danger", text: "Deactivate" });
  deactivate.addEventListener("click", () => busy(deactivate, status, async () => {
    if (!reason.value.trim()) throw new Error("Say why the entry is deactivated.");
    await api.post(`/v1/blocklist/entries/${entryId}/deactivate`, { reason: reason.value.trim() });
    await renderEntry(main, entryId);
  }));
  showIn(main,
    h("h1", { text: `Protected speaker ${entry.name}` }),
    h("p", {}, h("a", { href: "#/admin", text: "← Admin" })),
    facts([["Entry", String(entry.entry_id)], ["Kind", entry.kind], ["Reason", entry.reason], ["Source", entry.source], ["Listed", `${when(entry.created_at)} by ${entry.created_by}`], ["State", entry.active ? "active" : `deactivated: ${entry.deactivation_reason}`]]),
    h("h2", { text: "Samples" }),
    table(["SHA-256", "Seconds", "Model", "Added"], entry.samples.map((s) => [h("span", { class: "mono", text: s.audio_sha256.slice(0, 16) + "…" }), String(s.seconds), s.embedder, when(s.added_at)]), "Samples of this entry"),
    h("h2", { text: "Exceptions" }),
    entry.exceptions.length ? table(["Voice", "Note", "Granted", "Revoked", ""], entry.exceptions.map((x) => [h("span", { class: "mono", text: x.voice_id }), x.note, when(x.granted_at), when(x.revoked_at), x.revoked_at ? "" : revokeException(main, entryId, x.voice_id, status)]), "Exceptions of this entry") : h("p", { text: "No exception." }),
    entry.active ? exceptionForm(main, entryId) : null,
    entry.active ? h("section", {}, h("h2", { text: "Deactivate" }), field("Reason", reason), h("div", { class: "row" }, deactivate)) : null,
    status);
}

function revokeException(main, entryId, voiceId, status) {
  const button = h("button", { type: "button", class: "secondary", text: "Revoke", "aria-label": `Revoke the exception for ${voiceId}` });
  button.addEventListener("click", () => busy(button, status, async () => {
    await api.post(`/v1/blocklist/entries/${entryId}/exceptions/revoke`, { voice_id: voiceId });
    await renderEntry(main, entryId);
  }));
  return button;
}

function exceptionForm(main, entryId) {
  const note = h("input", { name: "note" });
  const voiceId = h("input", { name: "voice_id", pattern: "[0-9a-f]{32}" });
  const challengeId = h("input", { name: "challenge_id", pattern: "[0-9a-f]{32}" });
  const recording = h("input", { type: "file", name: "consent_recording", accept: "audio/*" });
  const submit = h("button", { type: "submit", text: "Grant the exception" });
  const status = h("div", { "aria-live": "polite" });
  return h("form", {
    onsubmit: (e) => {
      e.preventDefault();
      busy(submit, status, async () => {
        const form = new FormData();
        form.append("note", note.value.trim());
        if (voiceId.value) form.append("voice_id", voiceId.value.trim());
        if (challengeId.value) form.append("challenge_id", challengeId.value.trim());
        if (recording.files[0]) form.append("consent_recording", recording.files[0], recording.files[0].name);
        await api.postForm(`/v1/blocklist/entries/${entryId}/exceptions`, form);
        await renderEntry(main, entryId);
      });
    },
  },
  h("h2", { text: "Grant an exception" }),
  h("p", { class: "hint", text: "Only on the protected person's own consent: their voice's id, or a challenge they read aloud with the recording." }),
  field("Note", note), field("Voice id", voiceId), field("Challenge id", challengeId), field("Consent recording", recording),
  h("div", { class: "row" }, submit), status);
}

async function renderReview(main, reviewId) {
  const [review, { references }] = await Promise.all([
    api.get(`/v1/blocklist/reviews/${reviewId}`),
    api.get(`/v1/blocklist/reviews/${reviewId}/references`),
  ]);
  const entry = await api.get(`/v1/blocklist/entries/${review.entry_id}`);
  const status = h("div", { "aria-live": "polite" });
  const players = h("div", {});
  const note = h("textarea", { name: "note" });
  const approve = h("button", { type: "button", text: "Approve" });
  const deny = h("button", { type: "button", class: "danger", text: "Deny" });
  const decide = (button, verb) => busy(button, status, async () => {
    if (!note.value.trim()) throw new Error("Write a note: the decision is logged with it.");
    await api.post(`/v1/blocklist/reviews/${reviewId}/${verb}`, { note: note.value.trim() });
    await renderReview(main, reviewId);
  });
  approve.addEventListener("click", () => decide(approve, "approve"));
  deny.addEventListener("click", () => decide(deny, "deny"));
  const pending = review.status === "pending";
  const listenRows = references.map((ref) => {
    const play = h("button", { type: "button", class: "secondary", text: `Load reference ${ref.index + 1}`, "aria-label": `Load reference ${ref.index + 1} (${ref.seconds} s); the listening is logged` });
    play.addEventListener("click", () => busy(play, status, async () => {
      // The recording is fetched with the bearer token; the gateway logs the listening first.
      const response = await request("GET", `/v1/blocklist/reviews/${reviewId}/references/${ref.index}`, { raw: true });
      const audio = h("audio", { controls: true, src: URL.createObjectURL(await response.blob()), "aria-label": `Reference ${ref.index + 1} of the held voice` });
      play.replaceWith(audio);
      audio.play().catch(() => {});
    }));
    return [`Reference ${ref.index + 1}`, `${ref.seconds} s`, play];
  });
  showIn(players, references.length
    ? table(["Recording", "Length", "Listen"], listenRows, "The held voice's references")
    : h("p", { text: "This hold is of an enrollment: its recordings were never stored, so there is nothing to play. Decide from the scores." }));
  showIn(main,
    h("h1", { text: `Review ${reviewId}` }),
    h("p", {}, h("a", { href: "#/admin", text: "← Admin" })),
    facts([
      ["Status", review.status],
      ["Stage", review.stage],
      ["Held voice", h("span", { class: "mono", text: review.voice_id })],
      ["Requester", `${review.requester_sub}${review.tenant ? ` (tenant ${review.tenant})` : ""}`],
      ["Score against the entry", `${review.normalized_score.toFixed(2)} (normalised)`],
      ["Protected entry", `${entry.name} — ${entry.reason} (${entry.source})`],
      ["Held since", when(review.created_at)],
      ["Decided", review.decided_at ? `${when(review.decided_at)} by ${review.decided_by}: ${review.decision_note}` : ""],
    ]),
    h("h2", { text: "Listen to the held voice" }),
    h("p", { class: "hint", text: "These are the owner's own reference recordings from the sealed store, never engine output. Each one you play is recorded in the audit log." }),
    players,
    pending ? h("section", {}, h("h2", { text: "Decide" }), field("Note", note, "Why: it is logged with the decision."), h("div", { class: "row" }, approve, deny)) : null,
    status);
}
