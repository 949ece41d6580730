// The public JSON API with the signed-in bearer token; a refusal becomes an ApiError that
// carries the API's own code and sentence.
import { auth } from "./auth.js";

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export async function request(method, path, { json, form, headers = {}, raw = false } = {}) {
  const init = { method, headers: { ...headers }, credentials: "omit" };
  const token = auth.token();
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "The gateway did not answer. Check that it is running and try again.");
  }
  if (!response.ok) throw await refusal(response);
  if (raw) return response;
  return response.json();
}

export async function refusal(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: fall through to a sentence of our own
  }
  if (response.status === 401) auth.expired();
  if (body && typeof body.detail === "string") return new ApiError(response.status, body.error, body.detail);
  if (body && body.error && typeof body.error.message === "string") {
    return new ApiError(response.status, body.error.code, body.error.message);
  }
  return new ApiError(response.status, "http_error", `The gateway answered ${response.status} ${response.statusText}.`);
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, json) => request("POST", path, { json: json ?? {} }),
  postForm: (path, form) => request("POST", path, { form }),
  del: (path) => request("DELETE", path),
};
