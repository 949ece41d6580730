// Auditor: the signed checkpoint, the event browser with the API's filters and paging, an
// event's inclusion proof, an export, and how to verify the export offline.
import { api, request } from "../api.js";
import { h, field, showIn, facts, table, busy, downloadLink, when } from "../ui.js";

const ACTIONS = [
  "request.admitted", "request.denied", "request.released", "request.failed", "request.cancelled",
  "consent.challenge_issued", "consent.granted", "consent.denied", "consent.revoked",
  "voice.enrolled", "voice.erased", "protected_speaker.added", "protected_speaker.removed",
  "protected_speaker.exception_granted", "protected_speaker.exception_revoked",
  "review.approved", "review.denied", "audit.exported",
];
const PAGE_SIZE = 25;

export async function render(main) {
  showIn(main, h("h1", { text: "Audit log" }), h("p", { text: "Loading the checkpoint…" }));
  const checkpoint = await api.get("/v1/audit/checkpoint");
  const ageSeconds = Math.max(0, Math.round((Date.now() - new Date(checkpoint.created_at)) / 1000));
  const filters = {
    action: h("select", { name: "action" }, h("option", { value: "", text: "any action" }), ACTIONS.map((a) => h("option", { value: a, text: a }))),
    actor: h("input", { name: "actor" }),
    voice: h("input", { name: "voice" }),
    tenant: h("input", { name: "tenant" }),
    since: h("input", { type: "datetime-local", name: "since" }),
    until: h("input", { type: "datetime-local", name: "until" }),
  };
  const eventsBox = h("div", { id: "events" });
  const status = h("div", { "aria-live": "polite" });
  const cursors = [-1];
  const query = () => {
    const params = new URLSearchParams();
    for (const [name, input] of Object.entries(filters)) {
      if (!input.value) continue;
      params.set(name, input.type === "datetime-local" ? new Date(input.value).toISOString() : input.value.trim());
    }
    return params;
  };
  const load = async () => {
    const params = query();
    params.set("after", String(cursors[cursors.length - 1]));
    params.set("limit", String(PAGE_SIZE));
    const page = await api.get(`/v1/audit/events?${params}`);
    showIn(eventsBox, eventsTable(page, status), pager(page));
  };
  const pager = (page) => {
    const previous = h("button", { type: "button", class: "secondary", text: "Previous page", disabled: cursors.length === 1 });
    const next = h("button", { type: "button", class: "secondary", text: "Next page", disabled: page.next_after === null });
    previous.addEventListener("click", () => busy(previous, status, async () => { cursors.pop(); await load(); }));
    next.addEventListener("click", () => busy(next, status, async () => { cursors.push(page.next_after); await load(); }));
    return h("div", { class: "row" }, previous, next, h("span", { class: "hint", text: `Page ${cursors.length}` }));
  };
  const apply = h("button", { type: "submit", text: "Show events" });
  const filterForm = h("form", {
    onsubmit: (e) => { e.preventDefault(); cursors.splice(1); busy(apply, status, load); },
  },
  h("div", { class: "grid" }, Object.entries(filters).map(([name, input]) => field(name[0].toUpperCase() + name.slice(1), input))),
  h("div", { class: "row" }, apply));
  showIn(
    main,
    h("h1", { text: "Audit log" }),
    h("h2", { text: "Signed checkpoint" }),
    facts([
      ["Size", `${checkpoint.tree_size} events`],
      ["Root hash", h("span", { class: "mono", text: checkpoint.root_hash })],
      ["Signed", `${when(checkpoint.created_at)} (${ageSeconds} s ago)`],
    ]),
    h("details", {}, h("summary", { text: "The signed note" }), h("pre", { class: "mono", text: checkpoint.note })),
    h("h2", { text: "Events" }),
    filterForm,
    status,
    eventsBox,
    exportSection(query),
  );
  await load();
}

function eventsTable(page, status) {
  const proofBox = h("div", { id: "proof" });
  const rows = page.events.map(({ index, event }) => {
    const prove = h("button", { type: "button", class: "secondary", text: "Proof", "aria-label": `Inclusion proof of event ${index}` });
    prove.addEventListener("click", () =>
      busy(prove, status, async () => {
        const proof = await api.get(`/v1/audit/events/${index}/proof`);
        showIn(proofBox, h("div", { class: "panel" }, h("h3", { text: `Inclusion proof of event ${index}` }),
          facts([["Tree size", String(proof.tree_size)], ["Leaf hash", h("span", { class: "mono", text: proof.leaf_hash })],
            ["Path", h("span", { class: "mono", text: (proof.proof || []).join(" ") })]]),
          h("pre", { class: "mono", text: proof.entry })));
      }),
    );
    return [String(index), when(event.time), event.action, event.decision, event.reason || "", `${event.actor.sub || ""}${event.actor.tenant ? ` (${event.actor.tenant})` : ""}`, (event.subjects && event.subjects.voice_id) || "", prove];
  });
  return h("div", {}, page.events.length ? table(["#", "Time", "Action", "Decision", "Reason", "Actor", "Voice", ""], rows, "Audit events") : h("p", { text: "No event matches." }), proofBox);
}

function exportSection(query) {
  const status = h("div", { "aria-live": "polite" });
  const result = h("div", {});
  const button = h("button", { type: "button", text: "Export a bundle" });
  button.addEventListener("click", () =>
    busy(button, status, async () => {
      const body = Object.fromEntries(query());
      const response = await request("POST", "/v1/audit/exports", { json: body, raw: true });
      const blob = await response.blob();
      showIn(result, h("p", { role: "status", class: "ok", text: `Bundle ready (${Math.round(blob.size / 1024)} KB).` }), downloadLink(blob, "audit-bundle.tar", "Download audit-bundle.tar"));
    }),
  );
  return h(
    "section",
    {},
    h("h2", { text: "Export" }),
    h("p", { text: "With no filter the bundle holds every event; with the filters above it holds the matching events with their inclusion proofs. The export itself is logged." }),
    h("div", { class: "row" }, button), status, result,
    h("h3", { text: "Verify it offline" }),
    h("ol", {},
      h("li", {}, "Take the log's published key: ", h("a", { href: "/v1/audit/public-key", text: "/v1/audit/public-key" }), " (keep it from a source you trust, not from the bundle)."),
      h("li", {}, "On any machine with clonegate installed, with no database and no network: ", h("code", { text: "clonegate audit verify audit-bundle.tar --key public-key.txt" })),
      h("li", {}, "Keep the bundle's checkpoint; next time add ", h("code", { text: "--previous-checkpoint checkpoint.txt" }), " to prove the log only grew.")),
  );
}
