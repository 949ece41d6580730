// Owner: my voices, one voice (consents with revoke, usage ledger and chart, more samples,
// erase), and the new-voice flow.
import { api } from "../api.js";
import { h, field, showIn, errorBox, table, when, busy, facts } from "../ui.js";
import { renderNewVoice, referencePicker } from "./enroll.js";
import { usageChart } from "../chart.js";

export async function render(main, { args, me }) {
  if (args[0] === "new") return renderNewVoice(main, { me });
  if (args[0] === "voice" && args[1]) return renderVoice(main, args[1]);
  showIn(main, h("h1", { text: "My voices" }), h("p", { text: "Loading…" }));
  const { voices } = await api.get("/v1/voices");
  const rows = voices.map((v) => [
    h("a", { href: `#/owner/voice/${v.voice_id}`, class: "mono", text: v.voice_id }),
    v.status,
    when(v.created_at),
  ]);
  showIn(
    main,
    h("h1", { text: "My voices" }),
    h("div", { class: "row" }, h("a", { class: "button", href: "#/owner/new", text: "New voice" })),
    voices.length
      ? table(["Voice", "Status", "Enrolled"], rows, "Your voices")
      : h("p", { text: "You have no voice yet. A new voice starts with a consent statement you read aloud." }),
  );
}

async function renderVoice(main, voiceId) {
  showIn(main, h("h1", { text: "Voice" }), h("p", { text: "Loading…" }));
  const voice = await api.get(`/v1/voices/${voiceId}`);
  const erased = voice.status === "erased";
  const consentsStatus = h("div", { "aria-live": "polite" });
  const consentRows = voice.consents.map((c) => {
    const live = !c.revoked_at;
    const revoke = h("button", { type: "button", class: "danger", text: "Revoke", "aria-label": `Revoke consent for ${c.grantee_id}` });
    revoke.addEventListener("click", () =>
      busy(revoke, consentsStatus, async () => {
        await api.post(`/v1/consents/${c.consent_id}/revoke`);
        await renderVoice(main, voiceId);
        showIn(main.querySelector("#consents-status"), h("p", { role: "status", class: "ok", text: `Consent for ${c.grantee_id} revoked: synthesis in this voice is refused to it from now on.` }));
      }),
    );
    return [
      `${c.grantee_kind} ${c.grantee_id}`,
      c.purposes.join(", "),
      c.languages.join(", "),
      `${when(c.not_before)} – ${when(c.not_after)}`,
      `${c.uses} of ${c.max_uses}`,
      live ? (erased ? "" : revoke) : h("span", { class: "bad", text: `revoked ${when(c.revoked_at)}` }),
    ];
  });
  consentsStatus.id = "consents-status";
  const usage = erased ? [] : (await api.get(`/v1/voices/${voiceId}/usage`)).usage;
  showIn(
    main,
    h("h1", { text: `Voice ${voiceId}` }),
    h("p", {}, h("a", { href: "#/owner", text: "← My voices" })),
    facts([
      ["Status", voice.status],
      ["Owner name", voice.owner_name],
      ["Enrolled", when(voice.created_at)],
      ["Profile version", String(voice.profile_version)],
      ["Erased", when(voice.erased_at)],
    ]),
    h("h2", { text: "Consents" }),
    table(["Grantee", "Purposes", "Languages", "Valid", "Uses", ""], consentRows, "Consents of this voice"),
    consentsStatus,
    h("h2", { text: "Usage ledger" }),
    usage.length ? usageChart(usage) : null,
    usage.length
      ? table(
          ["When", "Who", "Tenant", "Purpose", "Language", "Audit event"],
          usage.map((u) => [when(u.created_at), u.principal_sub, u.tenant || "", u.purpose, u.language, String(u.audit_index ?? "")]),
          "Uses of this voice",
        )
      : h("p", { text: "No synthesis in this voice yet." }),
    erased ? null : samplesSection(voiceId),
    erased ? null : eraseSection(main, voiceId),
  );
}

function samplesSection(voiceId) {
  const status = h("div", { "aria-live": "polite" });
  const picker = referencePicker({ label: "more samples" });
  const submit = h("button", { type: "button", text: "Add samples" });
  submit.addEventListener("click", () =>
    busy(submit, status, async () => {
      const files = picker.files();
      if (!files.length) throw new Error("Record or choose at least one sample first.");
      const form = new FormData();
      files.forEach(({ blob, name }) => form.append("references", blob, name));
      const result = await api.postForm(`/v1/voices/${voiceId}/samples`, form);
      showIn(status, h("p", { role: "status", class: "ok", text: `Samples added: the voice is now at profile version ${result.profile_version}.` }));
    }),
  );
  return h("section", {}, h("h2", { text: "Add samples" }), h("p", { class: "hint", text: "More of your own speech; each is checked to be the same speaker as your consent recording." }), picker.element, h("div", { class: "row" }, submit), status);
}

function eraseSection(main, voiceId) {
  const status = h("div", { "aria-live": "polite" });
  const confirmBox = h("div", {});
  const start = h("button", { type: "button", class: "danger", text: "Erase this voice" });
  start.addEventListener("click", () => {
    const typed = h("input", { autocomplete: "off" });
    const confirmButton = h("button", { type: "button", class: "danger", text: "Erase for good" });
    confirmButton.addEventListener("click", () =>
      busy(confirmButton, status, async () => {
        if (typed.value.trim() !== "erase") throw new Error('Type the word "erase" to confirm.');
        await api.del(`/v1/voices/${voiceId}`);
        await renderVoice(main, voiceId);
      }),
    );
    showIn(
      confirmBox,
      h("div", { class: "panel", role: "group", "aria-label": "Confirm erasure" },
        h("p", { text: "Erasing deletes the recordings, the profiles and the voice's key, and revokes every consent. It cannot be undone." }),
        field('Type "erase" to confirm', typed),
        h("div", { class: "row" }, confirmButton, h("button", { type: "button", class: "secondary", text: "Cancel", onclick: () => { showIn(confirmBox); start.focus(); } })),
      ),
    );
    typed.focus();
  });
  return h("section", {}, h("h2", { text: "Erase" }), h("div", { class: "row" }, start), confirmBox, status);
}
