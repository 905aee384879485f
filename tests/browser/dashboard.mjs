// The dashboard, end to end in Debian's Chromium (playwright-core, never a downloaded browser).
// Run by tests/api/dashboard.rs against a real credvault server on SQLite whose verifiers talk
// to local fake providers. Environment: CREDVAULT_URL (the gateway), CREDVAULT_TOKEN (a token
// for every customer), CUSTOMER_LABEL (the customer to pick), VULTR_KEY and GCP_KEY_JSON (keys
// the fakes accept), FETCHED (a credential the harness fetched 3 times as token "collector"),
// SCREENSHOTS (a directory for screenshots), BOUND_TOKEN (a dashboard token bound to the
// customer). The customer also has 101 Azure credentials, "Azure 000" the oldest. Exits
// non-zero, saying why, on the first failure.

import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("CREDVAULT_URL");
const token = env("CREDVAULT_TOKEN");
const customerLabel = env("CUSTOMER_LABEL");
const vultrKey = env("VULTR_KEY");
const gcpKey = env("GCP_KEY_JSON");
const fetched = env("FETCHED");
const shots = env("SCREENSHOTS");
const boundToken = env("BOUND_TOKEN");
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on("dialog", (dialog) => {
    problems.push(`a dialog opened: ${dialog.message()}`);
    dialog.dismiss();
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !/status of (401|404|422|503)/.test(message.text())) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  // Violations of the page's Content-Security-Policy, as the browser reports them.
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const step = async (name, body) => {
    try {
      await body();
    } catch (error) {
      await page.screenshot({ path: join(shots, `failed-${name}.png`), fullPage: true }).catch(() => {});
      throw new Error(`step "${name}": ${error.message}`);
    }
  };
  const notice = () => page.locator("main .form-message.ok").first();

  const response = await page.goto(`${base}/dashboard/`);
  const csp = response.headers()["content-security-policy"] || "";
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(response.headers()["x-content-type-options"], "nosniff");

  await step("a wrong token is refused", async () => {
    await page.getByLabel("API token").fill("cvt_not-a-real-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("was not accepted").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("credvault.token")), null);
  });

  await step("sign in and pick the customer", async () => {
    await page.getByLabel("API token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Choose a customer" }).waitFor();
    await page.getByRole("button", { name: customerLabel }).click();
    await page.getByRole("heading", { name: "Credentials", exact: true }).waitFor();
    assert.equal(await page.evaluate(() => localStorage.length), 0, "nothing in localStorage");
    assert.equal((await context.cookies()).length, 0, "no cookies");
    await page.screenshot({ path: join(shots, "credentials.png"), fullPage: true });
  });

  await step("test connection, then add a Vultr credential", async () => {
    await page.getByRole("button", { name: "Add credential" }).click();
    await page.getByLabel("Name").fill("Production Vultr");
    await page.getByLabel("API key").fill(vultrKey);
    await page.getByRole("button", { name: "Test connection" }).click();
    await page.getByText("Connection works").waitFor();
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("heading", { name: "Production Vultr" }).waitFor();
    await page.getByText("will not be shown again").waitFor();
    assert.equal(await page.getByText(vultrKey).count(), 0, "the secret is not shown");
    // Verified on write: the verdict, the identity the provider reported and its finding.
    await page.getByText("The provider accepted it").waitFor();
    await page.locator(".badge", { hasText: /^Verified$/ }).first().waitFor();
    await page.locator(".badge", { hasText: /^1 finding$/ }).first().waitFor();
    await page.locator(".facts dd", { hasText: "ops@acme.test" }).waitFor();
    await page.getByRole("region", { name: "Findings" }).getByText("can manage users").waitFor();
  });

  await step("verify now", async () => {
    await page.getByRole("button", { name: "Verify now" }).click();
    await page.getByText("Verification: valid").waitFor();
    await page.locator(".badge", { hasText: /^Verified$/ }).first().waitFor();
  });

  await step("rotate to version 2, then destroy version 1", async () => {
    const rotate = page.getByRole("form", { name: "Rotate" });
    await rotate.getByLabel("API key").fill(`${vultrKey}-ROTATED`);
    await rotate.getByRole("button", { name: "Rotate" }).click();
    await page.getByText("version 2 is current").waitFor();
    await page.getByText("The provider rejected it").waitFor();
    await page.locator(".badge", { hasText: /^Verification failed$/ }).first().waitFor();
    const one = page.locator('tr[data-version="1"]');
    await one.getByRole("button", { name: "Destroy…" }).click();
    const confirm = one.getByRole("button", { name: "Destroy version 1" });
    assert.equal(await confirm.isDisabled(), true, "destroy waits for the typed number");
    await one.getByLabel("Type 1 to destroy version 1").fill("1");
    await confirm.click();
    await page.getByText("Version 1: destroyed").waitFor();
    await page.locator('tr[data-version="1"] .badge', { hasText: "destroyed" }).waitFor();
    await page.locator('tr[data-version="2"]', { hasText: "(current)" }).waitFor();
    await page.screenshot({ path: join(shots, "credential.png"), fullPage: true });
  });

  await step("rename, delete and restore", async () => {
    const rename = page.getByRole("form", { name: "Rename" });
    await rename.getByLabel("New name").fill("Production Vultr (renamed)");
    await rename.getByRole("button", { name: "Rename" }).click();
    await page.getByRole("heading", { name: "Production Vultr (renamed)" }).waitFor();
    await page.getByRole("button", { name: "Delete…" }).click();
    await page.getByRole("button", { name: "Delete “Production Vultr (renamed)”" }).click();
    await page.getByText(/Pending deletion \(purge/).first().waitFor();
    await page.getByRole("button", { name: "Restore" }).click();
    await page.getByText("Restored.").waitFor();
    await page.locator(".badge", { hasText: /^Active$/ }).first().waitFor();
  });

  await step("a bad GCP key is refused beside its field; a good one is stored", async () => {
    await page.getByRole("button", { name: "Back to credentials" }).click();
    await page.getByRole("button", { name: "Add credential" }).click();
    await page.getByLabel("Provider", { exact: true }).selectOption("gcp");
    await page.getByLabel("Name").fill("Analytics GCP");
    await page.getByLabel("Service account key (JSON)").fill("{not json");
    await page.getByRole("button", { name: "Save" }).click();
    const error = page.locator('[data-error-for="credentials.service_account_json"]');
    await error.filter({ hasText: /./ }).waitFor();
    await page.screenshot({ path: join(shots, "field-error.png"), fullPage: true });
    await page.getByLabel("Service account key (JSON)").fill(gcpKey);
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("heading", { name: "Analytics GCP" }).waitFor();
  });

  await step("a hostile name is shown as text", async () => {
    await page.getByRole("button", { name: "Back to credentials" }).click();
    await page.getByRole("button", { name: "Add credential" }).click();
    const hostile = "<img src=x onerror=alert(1)>";
    await page.getByLabel("Name").fill(hostile);
    await page.getByLabel("API key").fill(vultrKey);
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("heading", { name: hostile }).waitFor();
    assert.equal(await page.locator("main img").count(), 0, "no element was made from the name");
  });

  await step("the uses chart names who fetched it", async () => {
    await page.getByRole("button", { name: "Back to credentials" }).click();
    await page.getByRole("button", { name: fetched }).click();
    await page.getByText("3 uses in the last 30 days").first().waitFor();
    const today = new Date().toISOString().slice(0, 10);
    assert.equal(await page.locator(`rect[data-day="${today}"]`).getAttribute("data-uses"), "3");
    await page.locator("table.callers tr", { hasText: "collector" }).filter({ hasText: "127.0.0.1" }).waitFor();
    await page.locator("table.events td", { hasText: "used" }).first().waitFor();
    await page.screenshot({ path: join(shots, "uses.png"), fullPage: true });
  });

  await step("a provider's credentials past the newest hundred come on request", async () => {
    // The harness stored "Azure 000" (the oldest) to "Azure 100".
    await page.getByRole("button", { name: "Back to credentials" }).click();
    const azure = page.locator('section[data-provider="azure"]');
    await azure.locator("tbody tr").nth(99).waitFor();
    assert.equal(await azure.locator("tbody tr").count(), 100);
    assert.equal(await azure.getByRole("button", { name: "Azure 000" }).count(), 0);
    assert.match(await azure.locator(".more-row [role=status]").textContent(), /Newest 100 of 101/);
    await azure.getByRole("button", { name: "Show more" }).click();
    await azure.locator(".more-row").waitFor({ state: "detached" });
    assert.equal(await azure.locator("tbody tr").count(), 101);
    // The one the button loaded opens like any other.
    await azure.getByRole("button", { name: "Azure 000" }).click();
    await page.getByRole("heading", { name: "Azure 000" }).waitFor();
  });

  await step("a narrow window still shows the list", async () => {
    await page.setViewportSize({ width: 380, height: 800 });
    await page.getByRole("button", { name: "Back to credentials" }).click();
    await page.getByRole("button", { name: "Analytics GCP" }).waitFor();
    await page.screenshot({ path: join(shots, "narrow.png"), fullPage: true });
  });

  await step("a database outage shows a banner that clears when it heals", async () => {
    // The server's own 503 while its database is unreachable is tested in tests/api/faults.rs;
    // here those answers are played to the page, then taken away as the database heals.
    const outage = (route) => route.fulfill({
      status: 503,
      contentType: "application/json",
      body: JSON.stringify({ error: { code: "unavailable", message: "the credential database is unavailable; retry shortly" } }),
    });
    await page.route("**/api/v1/**", outage);
    await page.route("**/readyz", outage);
    await page.getByRole("button", { name: "Analytics GCP" }).click();
    await page.locator("#banner", { hasText: "database is unavailable" }).waitFor();
    await page.screenshot({ path: join(shots, "outage.png"), fullPage: true });
    await page.unroute("**/api/v1/**", outage);
    await page.unroute("**/readyz", outage);
    await page.locator("#banner").waitFor({ state: "hidden" });
    await page.getByRole("heading", { name: "Credentials", exact: true }).waitFor();
  });

  await step("sign out clears the token", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("credvault.token")), null);
  });

  await step("a token bound to one customer goes straight to its credentials", async () => {
    await page.getByLabel("API token").fill(boundToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Credentials", exact: true }).waitFor();
    await page.getByRole("button", { name: "Analytics GCP" }).waitFor();
    assert.equal(await page.getByRole("button", { name: "Switch customer" }).count(), 0);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
  });

  const violations = await page.evaluate(() => window.__cspViolations);
  assert.deepEqual(violations, [], "Content-Security-Policy violations");
  assert.deepEqual(problems, []);
  console.log("dashboard: every step passed");
} finally {
  await browser.close();
}
