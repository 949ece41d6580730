// DOM helpers: elements are built from data, never from HTML strings, so nothing the API
// returns can become markup or script.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

let uid = 0;
// A labelled control: the label names it, the hint is read with it.
export function field(labelText, control, hint) {
  const id = control.id || `f${++uid}`;
  control.id = id;
  const parts = [h("label", { for: id, text: labelText }), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("p", { class: "hint", id: hintId, text: hint }));
  }
  return h("div", { class: "field" }, parts);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert", text: errorSentence(error) });
}

// The API's own sentence, never raw JSON.
export function errorSentence(error) {
  if (error && error.detail) return error.detail;
  if (error && error.message) return error.message;
  return String(error);
}

export function showIn(container, ...children) {
  container.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(([, v]) => v !== undefined && v !== null && v !== "").flatMap(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)]),
  );
}

export function table(headers, rows, caption) {
  // A table wider than a phone scrolls inside its region, which keyboard users reach by Tab.
  return h(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption || headers.join(", ") },
    h(
      "table",
      {},
      caption ? h("caption", { class: "sr-only", text: caption }) : null,
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
    ),
  );
}

export function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString();
}

// Runs an action from a button: disables it meanwhile and shows a refusal in `status`.
export async function busy(button, status, action) {
  button.disabled = true;
  if (status) showIn(status, h("p", { role: "status", text: "Working…" }));
  try {
    const result = await action();
    if (status && status.textContent === "Working…") showIn(status);
    return result;
  } catch (error) {
    if (status) showIn(status, errorBox(error));
    else throw error;
    return undefined;
  } finally {
    button.disabled = false;
  }
}

export function downloadLink(blob, filename, text) {
  return h("a", { class: "button secondary", href: URL.createObjectURL(blob), download: filename, text });
}
