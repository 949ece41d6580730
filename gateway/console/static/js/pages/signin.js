// Sign-in: a dev form that mints a dev token (dev mode only), or the identity provider (prod).
import { devSignIn, oidcSignIn } from "../auth.js";
import { h, field, showIn, errorBox } from "../ui.js";

const ROLES = ["owner", "client", "auditor", "admin"];

export function render(main, { config, me }) {
  const status = h("div", { "aria-live": "polite" });
  if (me) {
    showIn(main, h("h1", { text: "Signed in" }), h("p", { text: `You are signed in as ${me.display_name || me.subject}.` }));
    return;
  }
  const intro = config.detect_anonymous
    ? h("p", {}, "Anyone may check a file for this gateway's watermark on the ", h("a", { href: "#/detect", text: "Detect page" }), " without signing in.")
    : null;
  if (config.sign_in === "oidc") {
    const button = h("button", {
      type: "button",
      text: "Sign in with your identity provider",
      onclick: async () => {
        try {
          await oidcSignIn(config.oidc);
        } catch (error) {
          showIn(status, errorBox(error));
        }
      },
    });
    showIn(main, h("h1", { text: "Sign in" }), intro, h("p", { text: `Issuer: ${config.oidc.issuer}` }), button, status);
    return;
  }
  const subject = h("input", { name: "subject", required: true, autocomplete: "username", value: "alice" });
  const name = h("input", { name: "display_name", autocomplete: "name", value: "Alice" });
  const tenant = h("input", { name: "tenant" });
  const boxes = ROLES.map((role) => h("input", { type: "checkbox", name: "role", value: role, checked: role === "owner" }));
  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        const roles = boxes.filter((b) => b.checked).map((b) => b.value);
        if (!roles.length) return showIn(status, errorBox(new Error("Choose at least one role.")));
        try {
          await devSignIn({ subject: subject.value.trim(), roles, tenant: tenant.value.trim(), displayName: name.value.trim() });
        } catch (error) {
          showIn(status, errorBox(error));
        }
      },
    },
    field("Subject", subject, "Who the token says you are."),
    field("Display name", name, "The name a consent statement uses."),
    h("fieldset", {}, h("legend", { text: "Roles" }), boxes.map((b, i) => h("label", { class: "inline" }, b, ROLES[i]))),
    field("Tenant", tenant, "For a client: the tenant a consent names."),
    h("div", { class: "row" }, h("button", { type: "submit", text: "Sign in (dev)" })),
  );
  showIn(
    main,
    h("h1", { text: "Sign in" }),
    h("p", { class: "warn", text: "Dev mode: this form mints a dev token. In prod the console signs in with the identity provider." }),
    intro,
    form,
    status,
  );
}
