// Browser test of signing in to the admin page with single sign-on and of
// the two roles: the real redirect flow through the development identity
// provider, an auditor's read-only page, a person in neither group
// on their own page, the session cookie out of scripts' reach, CSRF refusals, and
// signing out; and no dead end when the admin leaves GitHub.com before
// the App exists and comes Back (PENDING, with Continue and Cancel). Run by e2e/ui_sso_test.go against the whole system.
import assert from "node:assert/strict";
import { open, signIn } from "./browser.mjs";

const gw = process.env.GATEWAY_URL;
const emu = process.env.EMU_URL;
const { browser, page, shot, out } = await open();
let step = "start";
try {
  step = "signed out: the page offers single sign-on, not a token";
  await page.goto(gw + "/");
  await page.getByRole("link", { name: "Sign in with single sign-on" }).waitFor();
  assert.equal(await page.getByLabel("Admin token").isVisible(), false, "the token form is shown");
  await shot("sso-01-signed-out");

  step = "a person in neither group is a server user: their own page, no administration";
  await page.getByRole("link", { name: "Sign in with single sign-on" }).click();
  await page.getByLabel("Email").fill("mallory@example.com");
  await page.getByLabel("Groups (comma-separated)").fill("staff");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Signed in as mallory").waitFor();
  await page.getByRole("heading", { name: "GitHub Connect is not enabled on this server" }).waitFor();
  assert.equal(new URL(page.url()).pathname, "/me");
  await page.goto(gw + "/");
  await page.waitForURL((u) => u.pathname === "/me");
  await shot("sso-02-no-group");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("link", { name: "Sign in with single sign-on" }).waitFor();

  step = "an auditor sees everything and can change nothing";
  await signIn(page, gw, { login: "ada@example.com", groups: "staff,ghconnect-auditors" });
  await page.getByText("Signed in as ada@example.com (auditor)").waitFor();
  await page.getByRole("heading", { name: "GitHub Connect is not enabled yet" }).waitFor();
  await page.getByText("You are signed in as an auditor").waitFor();
  assert.equal(await page.getByRole("button", { name: "Enable GitHub Connect" }).isDisabled(), true, "an auditor may press Enable");
  // The server refuses too, whatever the page shows.
  const auditorPost = await page.evaluate(async (csrf) => {
    const s = await (await fetch("/auth/session")).json();
    const r = await fetch("/v1/connections", { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": s.csrf_token }, body: "{}" });
    return r.status;
  });
  assert.equal(auditorPost, 403, "the server let an auditor change something");
  await shot("sso-03-auditor");

  step = "an admin may change things";
  await page.getByRole("button", { name: "Sign out" }).click();
  await signIn(page, gw, { login: "grace@example.com", groups: "ghconnect-admins" });
  await page.getByText("Signed in as grace@example.com (admin)").waitFor();
  assert.equal(await page.getByRole("button", { name: "Enable GitHub Connect" }).isDisabled(), false, "an admin may not press Enable");
  assert.equal(await page.getByText("You are signed in as an auditor").isVisible(), false, "an admin is told they are an auditor");

  step = "stranded after Back: leaving GitHub.com before the App is created";
  // The admin clicks Enable and, on GitHub.com's "create GitHub App" page,
  // presses Back instead of creating it: the browser stops at that page
  // (held here, so the emulator does not create the App at once).
  await page.route(emu + "/**", (route) => route.fulfill({ status: 200, contentType: "text/html", body: "<!doctype html><title>GitHub.com</title><h1>Create GitHub App</h1>" }));
  // The server's hostname, version and license are its own: the admin
  // only names the account.
  await page.getByLabel("Organization login or enterprise slug").fill("octo-org");
  await page.getByRole("button", { name: "Enable GitHub Connect" }).click();
  await page.getByRole("heading", { name: "Create GitHub App" }).waitFor();
  await page.goBack();
  await page.getByRole("heading", { name: "Enabling GitHub Connect is not finished" }).waitFor();
  assert.ok(await page.getByRole("button", { name: "Continue on GitHub.com" }).isVisible(), "no Continue");
  assert.equal(await page.locator("#enable-form").isVisible(), false, "the blank Enable form is back");
  await shot("sso-05-pending-after-back");
  await page.getByRole("button", { name: "Cancel enabling" }).click();
  await page.getByText("Enabling was cancelled").waitFor();
  await page.getByRole("heading", { name: "GitHub Connect is not enabled yet" }).waitFor();
  await page.unroute(emu + "/**");
  // Cancelled means gone: a new Enable for the same account is accepted.
  const again = await page.evaluate(async () => {
    const s = await (await fetch("/auth/session")).json();
    const r = await fetch("/v1/connections", { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": s.csrf_token },
      body: JSON.stringify({ requestId: "again-1", account: { kind: "ACCOUNT_KIND_ORGANIZATION", login: "octo-org" } }) });
    return r.status;
  });
  assert.equal(again, 200, "enabling again after Cancel was refused");
  await shot("sso-06-cancelled");

  step = "the session cookie is out of scripts' reach and CSRF is checked";
  assert.equal(await page.evaluate(() => document.cookie.includes("ghconnect_session")), false, "scripts can read the session cookie");
  const cookies = await page.context().cookies(gw);
  const sessionCookie = cookies.find((c) => c.name === "ghconnect_session");
  assert.ok(sessionCookie && sessionCookie.httpOnly && sessionCookie.secure && sessionCookie.sameSite === "Lax", "session cookie flags: " + JSON.stringify(sessionCookie));
  const noCSRF = await page.evaluate(async () => (await fetch("/v1/connections", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })).status);
  assert.equal(noCSRF, 403, "a change without the CSRF token was let through");
  await shot("sso-04-admin");

  step = "signing out ends the session on the server";
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("link", { name: "Sign in with single sign-on" }).waitFor();
  const after = await page.evaluate(async () => (await fetch("/v1/connections")).status);
  assert.equal(after, 401, "the API still answers after signing out");
  await page.reload();
  await page.getByRole("link", { name: "Sign in with single sign-on" }).waitFor();

  step = "a return address that a browser would read as another site ends on this one";
  // A tab is dropped by the browser: "/<tab>/evil.example" would be
  // "//evil.example", another origin. (That origin is answered here, so a
  // regression never leaves the machine.)
  await page.route(/^https?:\/\/evil\.example\//, (route) => route.fulfill({ status: 200, contentType: "text/html", body: "<title>evil</title>" }));
  for (const ret of ["%2F%09%2Fevil.example", "%2F%5Cevil.example", "%2F%2Fevil.example", "https%3A%2F%2Fevil.example%2F"]) {
    await page.goto(`${gw}/auth/login?return=${ret}`);
    await page.getByLabel("Email").fill("grace@example.com");
    await page.getByLabel("Groups (comma-separated)").fill("ghconnect-admins");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("Signed in as grace@example.com (admin)").waitFor();
    assert.equal(new URL(page.url()).origin, new URL(gw).origin, `return=${ret} left the site for ${page.url()}`);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("link", { name: "Sign in with single sign-on" }).waitFor();
  }
  console.log("sso test: 8 steps checked, screenshots in " + out);
} catch (e) {
  await shot("sso-failure").catch(() => {});
  console.error(`sso test failed at "${step}": ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
