// Sign-in. The token lives in this tab's sessionStorage (never localStorage, never a cookie):
// it is sent only as a bearer header, so there is no ambient credential to forge requests with.
// Dev mode: the gateway mints a dev token. Prod: OpenID Connect authorization code + PKCE at
// the issuer the API trusts, found through its discovery document.

const TOKEN_KEY = "clonegate.token";
const PKCE_KEY = "clonegate.pkce";
const listeners = new Set();

export const auth = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  set(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    listeners.forEach((fn) => fn());
  },
  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    listeners.forEach((fn) => fn());
  },
  expired() {
    if (sessionStorage.getItem(TOKEN_KEY)) this.signOut();
  },
  onChange: (fn) => listeners.add(fn),
};

export async function devSignIn({ subject, roles, tenant, displayName }) {
  const response = await fetch("/console/dev-token", {
    method: "POST",
    credentials: "omit",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ subject, roles, tenant: tenant || null, display_name: displayName || null }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `The gateway answered ${response.status}.`);
  auth.set(body.access_token);
}

function base64url(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(n = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function discovery(issuer) {
  const base = issuer.replace(/\/+$/, "");
  const response = await fetch(`${base}/.well-known/openid-configuration`, { credentials: "omit" });
  if (!response.ok) throw new Error(`The identity provider's discovery document did not load (${response.status}).`);
  const doc = await response.json();
  // A document for another issuer would send the owner's code somewhere the API does not trust.
  if (doc.issuer.replace(/\/+$/, "") !== base) throw new Error("The identity provider names a different issuer.");
  return doc;
}

function redirectUri() {
  return `${location.origin}/console/`;
}

export async function oidcSignIn(oidc) {
  if (!oidc.client_id) throw new Error("Sign-in is not configured: set CLONEGATE_CONSOLE_OIDC_CLIENT_ID.");
  const doc = await discovery(oidc.issuer);
  const verifier = randomString(48);
  const state = randomString(16);
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const url = new URL(doc.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: oidc.client_id,
    redirect_uri: redirectUri(),
    scope: oidc.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

// Back from the identity provider with ?code=&state=: exchange the code with the verifier.
export async function completeOidc(oidc) {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return false;
  history.replaceState(null, "", redirectUri() + location.hash);
  const pending = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  if (params.has("error")) throw new Error(params.get("error_description") || params.get("error"));
  if (!pending || pending.state !== params.get("state")) throw new Error("The sign-in answer does not match this tab's request; sign in again.");
  const doc = await discovery(oidc.issuer);
  const response = await fetch(doc.token_endpoint, {
    method: "POST",
    credentials: "omit",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: redirectUri(),
      client_id: oidc.client_id,
      code_verifier: pending.verifier,
    }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.access_token) throw new Error(body.error_description || "The identity provider refused the sign-in.");
  auth.set(body.access_token);
  return true;
}
