// Browser test of a server user's own page (/me), run by e2e/ui_me_test.go
// against the whole system with a connection enabled and unified search on
// with private results: people outside the admin groups sign in and land
// there, connect their GitHub.com accounts on GitHub.com's authorization
// page (the emulator's), search privately, are refused what they may not
// see on GitHub.com, see "connect again" after revoking the App there,
// cancel on GitHub.com, and disconnect. Mona opts in to unified
// contributions: counts the server reports reach her GitHub.com profile
// and her page says when; the admin page counts her and the last upload;
// opting out removes them. Every check runs and reports.
import assert from "node:assert/strict";
import { checks, finish, fitsIn, open, signIn } from "./browser.mjs";

const gw = process.env.GATEWAY_URL;
const emu = process.env.EMU_URL;
const clientId = process.env.CLIENT_ID;
const connectionId = process.env.CONNECTION_ID;
const contribToken = process.env.CONTRIB_TOKEN;
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

// until polls cond (something outside the page: GitHub.com's side) until
// it holds, for up to ms, and fails with what it saw last.
async function until(what, cond, ms = 20000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await cond();
    if (last === true) return;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}: ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// profileIs waits until GitHub.com's profile of login shows want (for up
// to ms: after an outage the uploader's backoff adds its wait).
function profileIs(login, want, ms) {
  return until(`${login}'s GitHub.com contributions`, async () => {
    const got = await (await fetch(`${emu}/_emu/users/${login}/contributions`)).json();
    return JSON.stringify(Object.entries(got || {}).sort()) === JSON.stringify(Object.entries(want).sort()) || got;
  }, ms);
}

// reportRaw reports counts as the server's contribution source does
// (REST, the role contributions-source), and returns the answer.
async function reportRaw(counts) {
  const resp = await fetch(`${gw}/v1/connections/${connectionId}/contributions:report`, {
    method: "POST", headers: { Authorization: "Bearer " + contribToken, "Content-Type": "application/json" },
    body: JSON.stringify({ counts }),
  });
  return { status: resp.status, out: await resp.json() };
}

// report reports counts; each must be queued for GitHub.com.
async function report(counts) {
  const { status, out } = await reportRaw(counts);
  assert.equal(status, 200, JSON.stringify(out));
  assert.equal(out.queued, counts.length, JSON.stringify(out));
}

const dayAgo = (n) => new Date(Date.now() - n * 86400000).toISOString().slice(0, 10);

try {
  await check("counts of someone who never signed in are refused; once they sign in, they are taken", async () => {
    const counts = [{ user: "lena", day: dayAgo(1), count: 2 }];
    const before = await reportRaw(counts);
    assert.equal(before.status, 400, JSON.stringify(before.out));
    assert.match(before.out.message, /lena is not a user of this server/);
    await signInAs("lena");
    const after = await reportRaw(counts);
    assert.equal(after.status, 200, JSON.stringify(after.out));
    assert.equal(after.out.changed, 1, JSON.stringify(after.out));
    assert.equal(after.out.queued ?? 0, 0, "lena has not linked an account: nothing to send");
    await signOut();
  });

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

  await check("mona opts in to unified contributions; her page says what is sent", async () => {
    await page.getByRole("heading", { name: "Unified contributions" }).waitFor();
    await page.getByText("Daily contribution counts only").waitFor();
    await page.getByText("Nothing sent to GitHub.com yet.").waitFor();
    await page.getByRole("button", { name: "Send my contribution counts" }).click();
    await notice.filter({ hasText: "You opted in" }).waitFor();
    await page.getByText("Stopping removes what was sent from your GitHub.com profile.").waitFor();
    await page.getByRole("button", { name: "Stop sending and remove them from GitHub.com" }).waitFor();
    await shot("03b-contributions-opted-in");
  });

  await check("counts the server reports reach mona's GitHub.com profile, and her page says when", async () => {
    await report([{ user: "mona", day: dayAgo(0), count: 3 }, { user: "mona", day: dayAgo(1), count: 5 }]);
    await profileIs("mona", { [dayAgo(0)]: 3, [dayAgo(1)]: 5 });
    // The page reads its status again by itself.
    await page.getByText(/^Last sent to GitHub.com: /).waitFor();
    await page.getByText("Up to date: GitHub.com has your counts.").waitFor();
    await shot("03c-contributions-sent");
  });

  await check("while GitHub.com fails, mona's page says her count waits and why; it leaves when GitHub.com answers", async () => {
    const faults = (f) => fetch(`${emu}/_emu/faults`, { method: "PUT", body: JSON.stringify(f) });
    assert.equal((await faults({ server_errors: 1000 })).status, 204);
    try {
      await report([{ user: "mona", day: dayAgo(2), count: 7 }]);
      await page.getByText(/^Waiting: the last upload failed: GitHub\.com is unavailable \(HTTP 502\); retrying at /).waitFor();
      await page.getByText(/1 day of counts waiting\.$/).waitFor();
      await shot("03c2-contributions-waiting");
    } finally {
      assert.equal((await faults({})).status, 204);
    }
    await profileIs("mona", { [dayAgo(0)]: 3, [dayAgo(1)]: 5, [dayAgo(2)]: 7 }, 60000);
    await page.getByText("Up to date: GitHub.com has your counts.").waitFor();
  });

  await check("the admin page counts mona and the last upload; the timeline names her opt-in", async () => {
    await signOut();
    await signIn(page, gw);
    const st = page.locator("#contrib-status");
    const row = (k) => st.locator("dt", { hasText: k }).locator("xpath=following-sibling::dd[1]");
    // Filled at once, when the feature gate answered.
    await row("Users opted in").waitFor();
    assert.equal(await row("Users opted in").textContent(), "1");
    assert.match(await row("Last upload").textContent(), /: ok$/);
    assert.match(await row("Last error").textContent(), /^GitHub\.com is unavailable \(HTTP 502\); retrying at /);
    const opted = page.locator("#timeline tbody tr", { hasText: "mona opted in to Unified contributions" }).first();
    await opted.waitFor();
    assert.match(await opted.locator("td").nth(1).innerText(), /^mona \(via gateway\)$/);
    await shot("03d-admin-contributions");
    await signOut();
    await signInAs("mona");
  });

  await check("mona opts out: what was sent is removed from her GitHub.com profile", async () => {
    await page.getByRole("button", { name: "Stop sending and remove them from GitHub.com" }).click();
    await notice.filter({ hasText: "what was sent is being removed from your GitHub.com profile" }).waitFor();
    await profileIs("mona", {});
    await page.getByText(/^Removed from your GitHub.com profile: /).waitFor();
    await page.getByRole("button", { name: "Send my contribution counts" }).waitFor();
    await shot("03e-contributions-removed");
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
