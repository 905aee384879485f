// DOM helpers: every value from the server becomes a text node (never HTML), and the providers'
// secret fields as the forms ask for them.

/** `el("button", { class: "x", onclick: f }, "text", child)`: attributes, listeners, children. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

export function when(iso) {
  if (!iso) return "never";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function day(iso) {
  return iso ? new Date(iso).toLocaleDateString(undefined, { dateStyle: "medium" }) : "";
}

export const PROVIDERS = {
  vultr: {
    label: "Vultr",
    fields: [{ name: "api_key", label: "API key", secret: true }],
  },
  aws: {
    label: "AWS",
    fields: [
      { name: "access_key_id", label: "Access key ID" },
      { name: "secret_access_key", label: "Secret access key", secret: true },
      { name: "session_token", label: "Session token (optional)", secret: true, optional: true },
    ],
  },
  gcp: {
    label: "Google Cloud",
    fields: [{ name: "service_account_json", label: "Service account key (JSON)", json: true }],
  },
  azure: {
    label: "Azure",
    fields: [
      { name: "tenant_id", label: "Tenant ID" },
      { name: "client_id", label: "Client ID" },
      { name: "client_secret", label: "Client secret", secret: true },
      { name: "subscription_id", label: "Subscription ID (optional)", optional: true },
    ],
  },
};

let nextId = 0;

/** A labelled input; its error line shows the server's message for `field`. */
export function field(label, input, fieldName, hint) {
  nextId += 1;
  const id = `f${nextId}`;
  input.id = id;
  const error = el("p", { class: "field-error", "data-error-for": fieldName, id: `${id}-error`, "aria-live": "polite" });
  input.setAttribute("aria-describedby", `${id}-error`);
  input.dataset.field = fieldName;
  return el("div", { class: "field" }, el("label", { for: id }, label), input, hint ? el("p", { class: "hint" }, hint) : null, error);
}

/** The secret fields of `provider` (GCP: paste the JSON or choose the key file). */
export function secretFields(provider) {
  const wrapper = el("div", { class: "secret-fields" });
  for (const spec of PROVIDERS[provider].fields) {
    const name = `credentials.${spec.name}`;
    if (spec.json) {
      const area = el("textarea", { name: spec.name, rows: 6, spellcheck: "false", autocomplete: "off" });
      const file = el("input", { type: "file", accept: "application/json,.json", "aria-label": "Choose the key file" });
      file.addEventListener("change", async () => {
        const chosen = file.files && file.files[0];
        if (chosen) area.value = await chosen.text();
      });
      wrapper.append(field(spec.label, area, name, "Paste the key file's contents, or choose the file:"), file);
    } else {
      const input = el("input", {
        name: spec.name,
        type: spec.secret ? "password" : "text",
        autocomplete: "off",
        spellcheck: "false",
        required: !spec.optional,
      });
      wrapper.append(field(spec.label, input, name));
    }
  }
  return wrapper;
}

/** The provider's fields as the API takes them (`credentials`), empty optional ones left out. */
export function readSecret(form, provider) {
  const credentials = {};
  for (const spec of PROVIDERS[provider].fields) {
    const input = form.querySelector(`[name="${spec.name}"]`);
    const value = input ? input.value : "";
    if (value !== "" || !spec.optional) credentials[spec.name] = spec.json ? value.trim() : value;
  }
  return credentials;
}

/** Shows an API error beside the field it names, or in the form's message line. */
export function showError(form, error) {
  for (const line of form.querySelectorAll(".field-error")) line.textContent = "";
  const target = error.field && form.querySelector(`[data-error-for="${CSS.escape(error.field)}"]`);
  const message = form.querySelector(".form-message");
  if (target) {
    target.textContent = error.message;
    if (message) message.textContent = "";
  } else if (message) {
    message.textContent = error.message;
    message.className = "form-message error";
  }
}

export function clearErrors(form) {
  for (const line of form.querySelectorAll(".field-error")) line.textContent = "";
  const message = form.querySelector(".form-message");
  if (message) {
    message.textContent = "";
    message.className = "form-message";
  }
}

export function say(form, text, kind = "ok") {
  const message = form.querySelector(".form-message");
  message.textContent = text;
  message.className = `form-message ${kind}`;
}
