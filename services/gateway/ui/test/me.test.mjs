// Browser test of a server user's own page (/me), run by e2e/ui_me_test.go
// against the whole system with a connection enabled and unified search on
// with private results: people outside the admin groups sign in and land
// there, connect their GitHub.com accounts on GitHub.com's authorization
// page (the emulator's), search privately, are refused what they may not
// see on GitHub.com, see "connect again" after revoking the App there,
// cancel on GitHub.com, and disconnect. Every check runs and reports.
import assert from "node:assert/strict";
import { checks, finish, fitsIn, open } from "./browser.mjs";

const gw = process.env.GATEWAY_URL;
const emu = process.env.EMU_URL;
const clientId = process.env.CLIENT_ID;
const opened = await open();
const { page, shot } = opened;
const ran = checks(shot);
const { check } = ran;
let err;

const notice = page.locator("#notice");
const status = page.locator("#search-status");
const results = page.locator("#results li");

// signInAs signs a person with no admin group in through single sign-on.
async function signInAs(login) {
  await page.goto(gw + "/");
  await page.getByRole("link", { name: "Sign in with single sign-on" }).click();
  await page.getByLabel("Email").fill(`${login}@example.com`);
  await page.getByLabel("Groups (comma-separated)").fill("staff");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText(`Signed in as ${login}`).waitFor();
}

async function signOut() {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("link", { name: "Sign in with single sign-on" }).waitFor();
}

// connectAs goes out to GitHub.com, signs in there as githubLogin and
// answers (approve or cancel).
async function connectAs(githubLogin, decision = "approve") {
  await page.getByRole("button", { name: /^Connect (your GitHub.com account|again)$/ }).click();
  await page.getByLabel("Username or email address").fill(githubLogin);
  if (decision === "approve") await page.getByRole("button", { name: /^Authorize / }).click();
  else await page.getByRole("button", { name: "Cancel" }).click();
  await page.waitForURL((u) => u.pathname === "/me");
}

async function searchFor(query) {
  await page.getByLabel("Search GitHub.com").fill(query);
  // The status of an earlier search must not pass for this one's.
  await page.evaluate(() => { document.getElementById("search-status").textContent = ""; });
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForFunction(() => /result|failed/.test(document.getElementById("search-status").textContent));
  return page.$$eval("#results li", (lis) => lis.map((li) => li.textContent));
}

try {
  await check("a person outside the admin groups lands on their own page", async () => {
    await signInAs("mona");
    assert.equal(new URL(page.url()).pathname, "/me");
    await page.getByRole("heading", { name: "Your GitHub.com account" }).waitFor();
    await page.getByText("You have not connected a GitHub.com account.").waitFor();
    await page.getByText("Unified search").first().waitFor();
    await shot("01-not-linked");
  });

  await check("mona connects her GitHub.com account on GitHub.com", async () => {
    await connectAs("mona");
    await notice.filter({ hasText: "Your GitHub.com account is connected." }).waitFor();
    await page.getByText(/^Linked as mona \(id \d+\)/).waitFor();
    await shot("02-linked");
  });

  await check("mona's search shows the private repository she may see on GitHub.com", async () => {
    const hits = await searchFor("internal");
    assert.ok(hits.some((h) => h.startsWith("octo-org/internal-tools") && h.includes("private")), `results: ${hits}`);
    await shot("03-private-result");
  });

  await check("eve, linked but without access on GitHub.com, sees no private result", async () => {
    await signOut();
    const made = await fetch(`${emu}/_emu/users/eve`, { method: "POST" });
    assert.ok(made.ok, `creating eve on GitHub.com: ${made.status}`);
    await signInAs("eve");
    await connectAs("eve");
    await page.getByText(/^Linked as eve \(id \d+\)/).waitFor();
    const hits = await searchFor("internal");
    assert.ok(!hits.some((h) => h.includes("private")), `eve sees: ${hits}`);
    await shot("04-no-access");
  });

  await check("a GitHub.com account linked to another user is refused, in words", async () => {
    await page.getByRole("button", { name: "Disconnect" }).click();
    await notice.filter({ hasText: "disconnected" }).waitFor();
    await connectAs("mona");
    await notice.filter({ hasText: "already connected to another user" }).waitFor();
    await page.getByText("You have not connected a GitHub.com account.").waitFor();
  });

  await check("cancelling on GitHub.com comes back with what happened", async () => {
    await connectAs("eve", "cancel");
    await notice.filter({ hasText: "You cancelled on GitHub.com" }).waitFor();
    await shot("05-cancelled");
  });

  await check("mona revokes the App on GitHub.com: connect again, public results still", async () => {
    await signOut();
    const revoked = await fetch(`${emu}/_emu/grants/${clientId}/mona`, { method: "DELETE" });
    assert.ok(revoked.ok, `revoking on GitHub.com: ${revoked.status}`);
    await signInAs("mona");
    await searchFor("internal");
    await status.filter({ hasText: "connected again" }).waitFor();
    await page.reload();
    await page.getByText("GitHub.com no longer accepts this server's authorization").waitFor();
    await page.getByRole("button", { name: "Connect again" }).waitFor();
    await shot("06-reconnect-needed");
  });

  await check("mona connects again and then disconnects", async () => {
    await connectAs("mona");
    await page.getByText(/^Linked as mona/).waitFor();
    assert.equal(await page.getByText("GitHub.com no longer accepts").isVisible(), false);
    await page.getByRole("button", { name: "Disconnect" }).click();
    await notice.filter({ hasText: "Your GitHub.com account is disconnected" }).waitFor();
    await page.getByRole("button", { name: "Connect your GitHub.com account" }).waitFor();
    const hits = await searchFor("internal");
    assert.ok(!hits.some((h) => h.includes("private")), `after disconnecting: ${hits}`);
    await shot("07-disconnected");
  });

  await check("a replayed GitHub.com redirect is refused and changes nothing", async () => {
    await page.goto(gw + "/connect/user/callback?code=replayed&state=" + "x".repeat(43));
    await notice.filter({ hasText: "no longer valid" }).waitFor();
    await page.getByText("You have not connected a GitHub.com account.").waitFor();
  });

  await check("a narrow window keeps the page inside it", async () => {
    await fitsIn(page, 375);
    await shot("08-narrow");
  });
} catch (e) {
  err = e;
}
await finish(opened, ran, "user page test", err);
