// The credentials page: sign in with a token, pick the customer (a token for every customer),
// then the customer's credentials per provider, adding one, and each one's versions, changes
// and history. Talks only to this gateway's JSON API (see api.js); renders only text (views.js).

import { ApiError, all, call, onUnauthenticated, onUnavailable, ready, session } from "./api.js";
import { PROVIDERS, clearErrors, day, el, field, fill, readSecret, say, secretFields, showError, svg, when } from "./views.js";

const main = document.getElementById("main");
const who = document.getElementById("who");
const banner = document.getElementById("banner");
const state = { session: null, customer: null, customerLabel: "" };

onUnauthenticated(() => signInView("Your token was not accepted (expired, revoked or mistyped): sign in again."));
onUnavailable(showOutage);

let outagePoll = null;

/** The database is unavailable: a banner until /readyz answers again, then a fresh view. */
function showOutage() {
  banner.textContent = "The credential database is unavailable right now: nothing can be read or saved. This clears by itself when it is back.";
  banner.hidden = false;
  if (outagePoll) return;
  outagePoll = setInterval(async () => {
    if (!(await ready())) return;
    clearInterval(outagePoll);
    outagePoll = null;
    banner.hidden = true;
    if (state.customer) credentialsView();
  }, 2000);
}

function show(...children) {
  fill(main, ...children);
  const heading = main.querySelector("h2");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

/** Runs `action`; an error other than 401 (handled globally) is said in `form`'s message line. */
async function attempt(form, action) {
  clearErrors(form);
  for (const button of form.querySelectorAll("button")) button.disabled = true;
  try {
    await action();
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) showError(form, error);
  } finally {
    for (const button of form.querySelectorAll("button")) button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Sign-in and the customer

function signInView(message) {
  session.signOut();
  Object.assign(state, { session: null, customer: null, customerLabel: "" });
  fill(who);
  const input = el("input", { type: "password", name: "token", autocomplete: "off", spellcheck: "false", required: true });
  const form = el(
    "form",
    { class: "card narrow", "aria-labelledby": "sign-in-title" },
    el("h2", { id: "sign-in-title" }, "Sign in"),
    message ? el("p", { class: "form-message error", role: "alert" }, message) : null,
    field("API token", input, "token", "A credvault token (cvt_…): serve --dev prints one, or credvault token create. It is kept in this browser tab only."),
    el("p", { class: "form-message" }),
    el("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    session.signIn(input.value.trim());
    attempt(form, start);
  });
  show(form);
  input.focus();
}

function signOut() {
  signInView("Signed out.");
}

async function start() {
  const { body } = await call("GET", "/api/v1/session");
  state.session = body;
  if (body.customer !== "*") {
    state.customer = body.customer;
    state.customerLabel = body.customer;
    return credentialsView();
  }
  return customerView();
}

function renderWho() {
  fill(
    who,
    state.session ? el("span", { class: "token-name" }, `Token: ${state.session.token_name}`) : null,
    state.customer ? el("span", { class: "customer-name" }, `Customer: ${state.customerLabel}`) : null,
    state.session && state.session.customer === "*" && state.customer
      ? el("button", { type: "button", onclick: customerView }, "Switch customer")
      : null,
    el("button", { type: "button", id: "sign-out", onclick: signOut }, "Sign out"),
  );
}

async function customerView() {
  state.customer = null;
  renderWho();
  const form = el("form", { class: "card narrow" }, el("h2", {}, "Choose a customer"));
  const message = el("p", { class: "form-message" });
  let customers = [];
  try {
    customers = await all("/api/v1/customers", { query: { page_size: 500 } });
  } catch (error) {
    if (error.status === 401) return;
    message.textContent = error.status === 403
      ? "This token may not list customers (it needs the admin scope): enter the customer's id."
      : error.message;
  }
  if (customers.length) {
    const list = el("ul", { class: "customers" });
    for (const customer of customers) {
      const label = `${customer.company_name} (${customer.email})`;
      list.append(
        el("li", {}, el("button", { type: "button", class: "link", onclick: () => openCustomer(customer.id, label) }, label),
          el("span", { class: `badge ${customer.status}` }, customer.status)),
      );
    }
    form.append(list);
  }
  const input = el("input", { name: "customer", autocomplete: "off", spellcheck: "false", placeholder: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" });
  form.append(field("Customer id", input, "X-Customer-ID"), message, el("button", { type: "submit" }, "Open"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    openCustomer(input.value.trim(), input.value.trim());
  });
  show(form);
}

function openCustomer(id, label) {
  state.customer = id;
  state.customerLabel = label;
  credentialsView();
}

// ---------------------------------------------------------------------------------------------
// The credentials list

async function summary() {
  return (await call("GET", "/api/v1/credentials/status/summary", { customer: state.customer })).body;
}

/** What the provider said about a secret just written, as a sentence to append. */
function verdict(v) {
  if (!v) return "";
  const said = { valid: "accepted it", invalid: "rejected it", unreachable: "could not be asked" }[v.outcome] || v.outcome;
  return ` The provider ${said}: ${v.reason}`;
}

function badges(c) {
  const list = [];
  if (c.purged_at) list.push(["Purged", "bad"]);
  else if (!c.is_active) list.push([`Pending deletion (purge ${day(c.scheduled_purge_at)})`, "warn"]);
  else list.push(["Active", "ok"]);
  if (c.verification_state === "failing") list.push([`Failing since ${day(c.failing_since)}`, "bad"]);
  else if (c.verification_state === "verified") list.push(["Verified", "ok"]);
  else if (c.verification_state === "invalid") list.push(["Verification failed", "bad"]);
  else list.push(["Never verified", "muted"]);
  if (c.is_active && c.findings.length) list.push([c.findings.length === 1 ? "1 finding" : `${c.findings.length} findings`, "warn"]);
  if (c.is_active && c.current_version === null) list.push(["Disabled", "warn"]);
  if (c.is_default) list.push(["Default", "muted"]);
  return el("span", { class: "badges" }, list.map(([text, kind]) => el("span", { class: `badge ${kind}` }, text)));
}

/** Table rows for credentials (purged ones left out): active first, then by name. */
function credentialRows(credentials) {
  return credentials
    .filter((c) => !c.purged_at)
    .sort((a, b) => Number(b.is_active) - Number(a.is_active) || a.credential_name.localeCompare(b.credential_name))
    .map((c) => el("tr", { "data-credential": c.id },
      el("th", { scope: "row" }, el("button", { type: "button", class: "link", onclick: () => detailView(c.id) }, c.credential_name)),
      el("td", {}, c.credential_type),
      el("td", {}, c.permissions),
      el("td", {}, badges(c)),
      el("td", {}, c.last_used_at ? `${when(c.last_used_at)} (${c.usage_count} uses)` : `never (${c.usage_count} uses)`),
      el("td", {}, when(c.last_verified_at)),
      el("td", {}, c.current_version === null ? "none enabled" : `v${c.current_version}${c.rotated_at ? `, ${day(c.rotated_at)}` : ""}`)));
}

/**
 * The summary lists each provider's newest credentials; this button appends the next page of
 * the provider's list (deleted ones included, as in the summary) until none is left.
 */
function moreButton(provider, token, tbody, shown, total) {
  const status = el("span", { class: "hint", role: "status" });
  const button = el("button", { type: "button", class: "more" }, "Show more");
  const footer = el("div", { class: "row more-row" }, status, el("p", { class: "form-message" }), button);
  let next = token;
  let loaded = shown;
  const describe = () => { status.textContent = `Newest ${loaded} of ${total}.`; };
  describe();
  button.addEventListener("click", () => attempt(footer, async () => {
    const { body, headers } = await call("GET", `/api/v1/credentials/${provider}`, {
      customer: state.customer,
      query: { include_inactive: true, page_size: 100, page_token: next },
    });
    tbody.append(...credentialRows(body));
    loaded += body.length;
    next = headers.get("X-Next-Page-Token");
    if (next) describe();
    else footer.remove();
  }));
  return footer;
}

async function credentialsView() {
  renderWho();
  let body;
  try {
    body = await summary();
  } catch (error) {
    if (error.status === 401) return;
    show(el("section", { class: "card" }, el("h2", {}, "Credentials"), el("p", { class: "form-message error", role: "alert" }, error.message)));
    return;
  }
  const counts = el("dl", { class: "counts" }, el("div", {}, el("dt", {}, "Credentials"), el("dd", {}, body.total_credentials)));
  const sections = [];
  for (const [provider, p] of Object.entries(body.providers)) {
    counts.append(el("div", {}, el("dt", {}, PROVIDERS[provider] ? PROVIDERS[provider].label : provider),
      el("dd", {}, `${p.active} active · ${p.verified} verified · ${p.failing} failing · ${p.risky} with findings · ${p.disabled} disabled · ${p.pending_deletion} pending deletion`)));
    const rows = credentialRows(p.credentials);
    if (!rows.length && !p.next_page_token) continue;
    const tbody = el("tbody", {}, rows);
    const section = el("section", { class: "card provider", "data-provider": provider },
      el("h3", {}, PROVIDERS[provider] ? PROVIDERS[provider].label : provider),
      el("div", { class: "scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, ["Name", "Type", "Permissions", "Status", "Last used", "Last verified", "Version"].map((h) => el("th", { scope: "col" }, h)))),
        tbody)));
    if (p.next_page_token) section.append(moreButton(provider, p.next_page_token, tbody, p.credentials.length, p.total));
    sections.push(section);
  }
  show(
    el("section", { class: "card" },
      el("div", { class: "row" }, el("h2", {}, "Credentials"),
        el("button", { type: "button", class: "primary", id: "add-credential", onclick: addView }, "Add credential")),
      counts),
    sections.length ? sections : el("p", { class: "empty card" }, "No credentials yet. Add the first one: it is encrypted before it is stored, and never shown again."),
  );
}

// ---------------------------------------------------------------------------------------------
// Adding a credential

function addView() {
  const provider = el("select", { name: "provider" }, Object.entries(PROVIDERS).map(([value, p]) => el("option", { value }, p.label)));
  const name = el("input", { name: "credential_name", autocomplete: "off", required: true, maxlength: 255 });
  const permissions = el("select", { name: "permissions" }, ["read_only", "read_write", "admin"].map((p) => el("option", { value: p }, p)));
  const makeDefault = el("input", { type: "checkbox", name: "make_default" });
  const secrets = el("div", {}, secretFields("vultr"));
  provider.addEventListener("change", () => fill(secrets, secretFields(provider.value)));
  const form = el("form", { class: "card", "aria-labelledby": "add-title" },
    el("h2", { id: "add-title" }, "Add a credential"),
    field("Provider", provider, "provider"),
    field("Name", name, "credential_name"),
    secrets,
    field("Permissions", permissions, "permissions"),
    el("div", { class: "field inline" }, makeDefault, el("label", { for: "make-default" }, "Make it the default for this provider")),
    el("p", { class: "form-message", role: "status" }),
    el("div", { class: "row" },
      el("button", { type: "button", id: "test-connection" }, "Test connection"),
      el("button", { type: "submit", class: "primary" }, "Save"),
      el("button", { type: "button", onclick: credentialsView }, "Cancel")));
  makeDefault.id = "make-default";
  form.querySelector("#test-connection").addEventListener("click", () => attempt(form, async () => {
    const { body } = await call("POST", "/api/v1/credentials/verify", {
      customer: state.customer,
      body: { provider: provider.value, credentials: readSecret(form, provider.value) },
    });
    say(form, `${body.outcome === "valid" ? "Connection works" : body.outcome === "invalid" ? "Rejected by the provider" : "Could not check"}: ${body.reason}`,
      body.outcome === "valid" ? "ok" : "error");
  }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(form, async () => {
      const { body } = await call("POST", "/api/v1/credentials", {
        customer: state.customer,
        body: {
          provider: provider.value,
          credential_name: name.value,
          credentials: readSecret(form, provider.value),
          permissions: permissions.value,
          make_default: makeDefault.checked,
        },
      });
      await detailView(body.credential_id, `Saved “${body.credential.credential_name}”. Its secret is encrypted and will not be shown again.${verdict(body.verification)}`);
    });
  });
  show(form);
}

// ---------------------------------------------------------------------------------------------
// One credential

async function detailView(id, notice) {
  let credential;
  try {
    credential = (await call("GET", `/api/v1/credentials/${id}`, { customer: state.customer })).body;
  } catch (error) {
    if (error.status === 404) return credentialsView();
    if (error.status !== 401) show(el("p", { class: "form-message error", role: "alert" }, error.message));
    return;
  }
  const c = credential;
  const facts = el("dl", { class: "facts" },
    [["Id", c.id], ["Type", c.credential_type], ["Permissions", c.permissions], ["Created", when(c.created_at)],
      ["Last used", when(c.last_used_at)], ["Uses", c.usage_count], ["Last verified", when(c.last_verified_at)],
      ["Current version", c.current_version === null ? "none enabled" : `v${c.current_version}`], ["Rotated", when(c.rotated_at)],
      ...Object.entries(c.identity).map(([k, v]) => [`Provider: ${k.replaceAll("_", " ")}`, v])]
      .map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  const findings = c.findings.length
    ? el("section", { class: "card", "aria-label": "Findings" }, el("h3", {}, "Findings"),
      el("p", { class: "hint" }, "From the last verification of the current version."),
      el("ul", { class: "findings" }, c.findings.map((f) => el("li", { "data-code": f.code }, f.detail))))
    : null;
  const parts = [
    el("section", { class: "card" },
      el("div", { class: "row" }, el("h2", {}, c.credential_name), badges(c),
        el("button", { type: "button", onclick: credentialsView }, "Back to credentials")),
      notice ? el("p", { class: "form-message ok", role: "status" }, notice) : null,
      facts),
    findings,
  ];
  if (c.is_active) parts.push(actions(c));
  else if (!c.purged_at) parts.push(restoreCard(c));
  parts.push(await versionsCard(c), await usesCard(c), await eventsCard(c));
  show(...parts);
}

function actions(c) {
  const verify = el("form", { class: "card", "aria-label": "Verify" }, el("h3", {}, "Verify"),
    el("p", { class: "hint" }, "Checks the current version against the provider."),
    el("p", { class: "form-message", role: "status" }), el("button", { type: "submit", id: "verify-now" }, "Verify now"));
  verify.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(verify, async () => {
      const { body } = await call("POST", "/api/v1/credentials/verify", { customer: state.customer, body: { credential_id: c.id } });
      await detailView(c.id, `Verification: ${body.outcome} (${body.reason})`);
    });
  });

  const newName = el("input", { name: "credential_name", value: c.credential_name, autocomplete: "off", maxlength: 255 });
  const rename = el("form", { class: "card", "aria-label": "Rename" }, el("h3", {}, "Rename"),
    field("New name", newName, "credential_name"), el("p", { class: "form-message" }), el("button", { type: "submit" }, "Rename"));
  rename.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(rename, async () => {
      await call("PATCH", `/api/v1/credentials/${c.id}`, { customer: state.customer, body: { credential_name: newName.value } });
      await detailView(c.id, "Renamed.");
    });
  });

  const disablePrevious = el("input", { type: "checkbox", name: "disable_previous", id: "disable-previous" });
  const rotate = el("form", { class: "card", "aria-label": "Rotate" }, el("h3", {}, "Rotate"),
    el("p", { class: "hint" }, "A new secret for the same credential: it becomes the current version."),
    secretFields(c.provider),
    el("div", { class: "field inline" }, disablePrevious, el("label", { for: "disable-previous" }, "Disable the current version")),
    el("p", { class: "form-message" }), el("button", { type: "submit" }, "Rotate"));
  rotate.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(rotate, async () => {
      const { body } = await call("PUT", `/api/v1/credentials/${c.id}`, {
        customer: state.customer,
        body: { provider: c.provider, credentials: readSecret(rotate, c.provider), disable_previous: disablePrevious.checked },
      });
      await detailView(c.id, `Rotated: version ${body.version.version} is current.${verdict(body.verification)}`);
    });
  });

  const confirmDelete = el("button", { type: "submit", class: "danger", hidden: true }, `Delete “${c.credential_name}”`);
  const remove = el("form", { class: "card", "aria-label": "Delete" }, el("h3", {}, "Delete"),
    el("p", { class: "hint" }, "It can be restored until its purge date (the customer's recovery window)."),
    el("p", { class: "form-message" }),
    el("button", { type: "button", id: "delete", onclick: () => { confirmDelete.hidden = false; confirmDelete.focus(); } }, "Delete…"),
    confirmDelete);
  remove.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(remove, async () => {
      await call("DELETE", `/api/v1/credentials/${c.id}`, { customer: state.customer });
      await detailView(c.id, "Deleted. It can be restored until its purge date.");
    });
  });
  return el("div", { class: "grid" }, verify, rename, rotate, remove);
}

function restoreCard(c) {
  const form = el("form", { class: "card", "aria-label": "Restore" }, el("h3", {}, "Restore"),
    el("p", {}, `Deleted; its versions will be destroyed on ${when(c.scheduled_purge_at)} unless it is restored.`),
    el("p", { class: "form-message" }), el("button", { type: "submit", id: "restore" }, "Restore"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(form, async () => {
      await call("POST", `/api/v1/credentials/${c.id}/restore`, { customer: state.customer });
      await detailView(c.id, "Restored.");
    });
  });
  return form;
}

async function versionsCard(c) {
  const card = el("form", { class: "card", "aria-label": "Versions" }, el("h3", {}, "Versions"), el("p", { class: "form-message" }));
  let versions = [];
  try {
    versions = await all(`/api/v1/credentials/${c.id}/versions`, { customer: state.customer, query: { page_size: 100 } });
  } catch (error) {
    if (error.status !== 404) showError(card, error);
    return card;
  }
  const change = (n, action) => attempt(card, async () => {
    await call("POST", `/api/v1/credentials/${c.id}/versions/${n}/${action}`, { customer: state.customer });
    await detailView(c.id, `Version ${n}: ${action === "destroy" ? "destroyed" : `${action}d`}.`);
  });
  const rows = versions.map((v) => {
    const buttons = [];
    if (c.is_active && v.state === "enabled") buttons.push(el("button", { type: "button", onclick: () => change(v.version, "disable") }, "Disable"));
    if (c.is_active && v.state === "disabled") buttons.push(el("button", { type: "button", onclick: () => change(v.version, "enable") }, "Enable"));
    if (c.is_active && v.state !== "destroyed") {
      const typed = el("input", { "aria-label": `Type ${v.version} to destroy version ${v.version}`, inputmode: "numeric", size: 4, hidden: true });
      const confirm = el("button", { type: "button", class: "danger", hidden: true, disabled: true }, `Destroy version ${v.version}`);
      typed.addEventListener("input", () => { confirm.disabled = typed.value.trim() !== String(v.version); });
      confirm.addEventListener("click", () => change(v.version, "destroy"));
      buttons.push(el("button", { type: "button", onclick: () => { typed.hidden = false; confirm.hidden = false; typed.focus(); } }, "Destroy…"), typed, confirm);
    }
    return el("tr", { "data-version": v.version },
      el("th", { scope: "row" }, `v${v.version}${v.version === c.current_version ? " (current)" : ""}`),
      el("td", {}, el("span", { class: `badge ${v.state === "enabled" ? "ok" : v.state === "disabled" ? "warn" : "bad"}` }, v.state)),
      el("td", {}, when(v.created_at)), el("td", {}, v.created_by || ""), el("td", {}, el("div", { class: "actions" }, buttons)));
  });
  card.append(el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, ["Version", "State", "Added", "By", ""].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows))));
  return card;
}

/** Uses per day over the last 30 days, and who fetched it (token, address). */
async function usesCard(c) {
  const card = el("section", { class: "card", "aria-labelledby": "uses-title" }, el("h3", { id: "uses-title" }, "Uses, last 30 days"));
  const since = new Date(Date.now() - 30 * 24 * 3600 * 1000);
  let uses = [];
  try {
    uses = await all(`/api/v1/credentials/${c.id}/audit`, {
      customer: state.customer,
      query: { action: "used", since: since.toISOString(), page_size: 500 },
    });
  } catch (error) {
    if (error.status !== 401) card.append(el("p", { class: "form-message error" }, error.message));
    return card;
  }
  const days = [];
  for (let i = 29; i >= 0; i -= 1) {
    const d = new Date(Date.now() - i * 24 * 3600 * 1000);
    days.push(d.toISOString().slice(0, 10));
  }
  const perDay = new Map(days.map((d) => [d, 0]));
  const callers = new Map();
  for (const use of uses) {
    const d = use.created_at.slice(0, 10);
    if (perDay.has(d)) perDay.set(d, perDay.get(d) + 1);
    const key = `${use.actor || "?"}\u0000${use.ip_address || "?"}`;
    const seen = callers.get(key) || { actor: use.actor || "?", ip: use.ip_address || "?", count: 0, last: use.created_at };
    seen.count += 1;
    if (use.created_at > seen.last) seen.last = use.created_at;
    callers.set(key, seen);
  }
  const peak = Math.max(1, ...perDay.values());
  const chart = svg("svg", { viewBox: "0 0 300 64", class: "chart", role: "img", "aria-label": `${uses.length} uses in the last 30 days` });
  days.forEach((d, i) => {
    const n = perDay.get(d);
    const height = Math.round((n / peak) * 60);
    chart.append(svg("rect", { x: i * 10 + 1, y: 62 - height, width: 8, height: Math.max(height, n ? 2 : 0), class: "bar", "data-day": d, "data-uses": n },
      svg("title", {}, `${d}: ${n} uses`)));
  });
  chart.append(svg("line", { x1: 0, y1: 62.5, x2: 300, y2: 62.5, class: "axis" }));
  const span = el("p", { class: "chart-span" }, el("span", {}, day(`${days[0]}T12:00:00Z`)), el("span", {}, "today"));
  card.append(el("p", { class: "uses-total" }, `${uses.length} uses in the last 30 days`), chart, span);
  const rows = [...callers.values()].sort((a, b) => b.count - a.count)
    .map((w) => el("tr", {}, el("td", {}, w.actor), el("td", {}, w.ip), el("td", {}, w.count), el("td", {}, when(w.last))));
  card.append(rows.length
    ? el("div", { class: "scroll" }, el("table", { class: "callers" },
        el("thead", {}, el("tr", {}, ["Token", "Address", "Uses", "Last"].map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows)))
    : el("p", { class: "empty" }, "Not fetched in the last 30 days."));
  return card;
}

async function eventsCard(c) {
  const card = el("section", { class: "card", "aria-labelledby": "events-title" }, el("h3", { id: "events-title" }, "Recent activity"));
  try {
    const { body } = await call("GET", `/api/v1/credentials/${c.id}/audit`, { customer: state.customer, query: { page_size: 25 } });
    card.append(el("div", { class: "scroll" }, el("table", { class: "events" },
      el("thead", {}, el("tr", {}, ["When", "Action", "Token", "Address", "Details"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, body.map((e) => el("tr", {}, el("td", {}, when(e.created_at)), el("td", {}, e.action),
        el("td", {}, e.actor || ""), el("td", {}, e.ip_address || ""), el("td", {}, e.details)))))));
  } catch (error) {
    if (error.status !== 401) card.append(el("p", { class: "form-message error" }, error.message));
  }
  return card;
}

// ---------------------------------------------------------------------------------------------

if (session.token()) {
  start().catch((error) => {
    if (!(error instanceof ApiError) || error.status !== 401) signInView(error.message);
  });
} else {
  signInView();
}
