// The console shell: configuration, sign-in state, the pages each role may open, hash routing.
import { api } from "./api.js";
import { auth, completeOidc } from "./auth.js";
import { h, showIn, errorBox } from "./ui.js";
import * as signin from "./pages/signin.js";
import * as owner from "./pages/owner.js";
import * as client from "./pages/client.js";
import * as detect from "./pages/detect.js";
import * as auditor from "./pages/auditor.js";
import * as admin from "./pages/admin.js";

// Each page, in the order of the navigation (a role lands on its first): who may open it (roles; "anonymous" when the detector is public), and its module.
const PAGES = [
  { path: "owner", title: "My voices", roles: ["owner"], page: owner },
  { path: "client", title: "Synthesize", roles: ["client"], page: client },
  { path: "admin", title: "Admin", roles: ["admin"], page: admin },
  { path: "auditor", title: "Audit log", roles: ["auditor", "admin"], page: auditor },
  { path: "detect", title: "Detect", roles: ["owner", "client", "auditor", "admin", "anonymous"], page: detect },
];

const state = { config: null, me: null };

function allowedPages() {
  const roles = state.me ? state.me.roles : state.config.detect_anonymous ? ["anonymous"] : [];
  return PAGES.filter((p) => p.roles.some((r) => roles.includes(r)));
}

function renderHeader(current) {
  const nav = document.getElementById("nav");
  showIn(
    nav,
    allowedPages().map((p) =>
      h("a", { href: `#/${p.path}`, text: p.title, "aria-current": p.path === current ? "page" : false }),
    ),
  );
  const who = document.getElementById("who");
  if (state.me) {
    const name = state.me.display_name || state.me.subject;
    showIn(
      who,
      h("span", { text: `${name} (${state.me.roles.join(", ")}${state.me.tenant ? `, tenant ${state.me.tenant}` : ""})` }),
      h("button", { class: "secondary", type: "button", text: "Sign out", onclick: () => auth.signOut() }),
    );
  } else {
    showIn(who, h("a", { href: "#/signin", class: "button secondary", text: "Sign in" }));
  }
}

async function route() {
  const main = document.getElementById("main");
  const [path, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const pages = allowedPages();
  let target = pages.find((p) => p.path === path);
  renderHeader(target ? target.path : path);
  if (!target && path !== "signin" && pages.length && state.me) target = pages[0];
  if (!target) {
    signin.render(main, { config: state.config, me: state.me });
  } else {
    document.title = `${target.title} · clonegate console`;
    renderHeader(target.path);
    try {
      await target.page.render(main, { config: state.config, me: state.me, args: rest });
    } catch (error) {
      showIn(main, h("h1", { text: target.title }), errorBox(error));
    }
  }
  const heading = main.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    if (document.activeElement === document.body || document.activeElement === main) heading.focus();
  }
}

async function loadIdentity() {
  state.me = null;
  if (!auth.token()) return;
  try {
    state.me = await api.get("/v1/me");
  } catch {
    auth.expired();
    state.me = null;
  }
}

async function start() {
  const main = document.getElementById("main");
  state.config = await (await fetch("/console/config.json", { credentials: "omit" })).json();
  try {
    if (state.config.sign_in === "oidc") await completeOidc(state.config.oidc);
  } catch (error) {
    showIn(main, h("h1", { text: "Sign-in failed" }), errorBox(error));
    return;
  }
  await loadIdentity();
  auth.onChange(async () => {
    await loadIdentity();
    const pages = allowedPages();
    const target = !state.me ? "#/signin" : pages.length ? `#/${pages[0].path}` : "#/signin";
    if (location.hash !== target) location.hash = target; // hashchange renders it
    else await route();
  });
  window.addEventListener("hashchange", route);
  await route();
  document.body.dataset.ready = "true";
}

start();
