// The gateway's JSON API as the page uses it: the bearer token (kept in sessionStorage only,
// sent only in the Authorization header), the customer it acts for (X-Customer-ID), and the
// error body `{"error": {"code", "message", "field"}}` turned into an ApiError.

const TOKEN_KEY = "credvault.token";

export class ApiError extends Error {
  constructor(status, body) {
    const detail = (body && body.error) || {};
    super(detail.message || `request failed (HTTP ${status})`);
    this.status = status;
    this.code = detail.code || "unknown";
    this.field = detail.field || null;
  }
}

export const session = {
  token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

// Listeners for the answers every view handles the same way: 401 (sign in again) and 503
// (the database is unavailable: a banner until it heals).
const handlers = { unauthenticated: () => {}, unavailable: () => {} };

export function onUnauthenticated(handler) {
  handlers.unauthenticated = handler;
}

export function onUnavailable(handler) {
  handlers.unavailable = handler;
}

/** Calls the API; resolves to `{ body, headers }`, or rejects with an ApiError. */
export async function call(method, path, { customer, body, query } = {}) {
  const headers = { Authorization: `Bearer ${session.token()}` };
  if (customer) headers["X-Customer-ID"] = customer;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (response.status === 401) {
    session.signOut();
    handlers.unauthenticated(new ApiError(401, parsed));
    throw new ApiError(401, parsed);
  }
  if (response.status === 503) {
    handlers.unavailable();
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return { body: parsed, headers: response.headers };
}

/** Every page of a list (`X-Next-Page-Token`), at most `limit` pages. */
export async function all(path, { customer, query = {}, limit = 20 } = {}) {
  const items = [];
  let token = "";
  for (let pages = 0; pages < limit; pages += 1) {
    const { body, headers } = await call("GET", path, { customer, query: { ...query, page_token: token } });
    items.push(...body);
    token = headers.get("X-Next-Page-Token") || "";
    if (!token) break;
  }
  return items;
}

/** Whether the server is ready again (the banner polls it). */
export async function ready() {
  try {
    return (await fetch("/readyz", { cache: "no-store", credentials: "omit" })).ok;
  } catch {
    return false;
  }
}
