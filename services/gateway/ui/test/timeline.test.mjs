// Browser checks of the admin page's timeline, run by e2e/ui_timeline_test.go
// against the whole system after it enabled, changed and disconnected one
// connection (FIRST_ID, for octo-org) and enabled a second (SECOND_ID, for
// octo-labs), both of this server (ghes.example.com): a feature change
// made in the page by a person signed in through single sign-on appears in
// words with that person (via the gateway), both connections' changes are
// shown and can be shown one at a time, older changes come a page at a
// time, and an auditor reads it.
// Every check runs and reports; the last line counts them.
import assert from "node:assert/strict";
import { checks, finish, fitsIn, open, signIn } from "./browser.mjs";

const gw = process.env.GATEWAY_URL;
const token = process.env.ADMIN_TOKEN;
const { FIRST_ID: first, SECOND_ID: second } = process.env;
const opened = await open();
const { page, shot } = opened;

const ran = checks(shot);
const { check } = ran;
let err;

// total is how many events both services hold, read with REST.
async function total(path) {
  let n = 0;
  let tok = "";
  do {
    const q = new URLSearchParams({ pageSize: "100" });
    if (tok) q.set("pageToken", tok);
    const resp = await fetch(`${gw}${path}?${q}`, { headers: { Authorization: "Bearer " + token } });
    assert.equal(resp.status, 200, `GET ${path}`);
    const page = await resp.json();
    n += (page.events || []).length;
    tok = page.nextPageToken;
  } while (tok);
  return n;
}

const rows = page.locator("#timeline tbody tr");
const more = page.getByRole("button", { name: "Show older changes" });
const filter = page.getByLabel("Connection", { exact: true });
// cells are the rows as [when (ISO), who, connection, what, from → to].
const cells = () => page.$$eval("#timeline tbody tr", (trs) => trs.map((tr) => {
  const td = [...tr.children];
  return [td[0].querySelector("time").dateTime, ...td.slice(1).map((c) => c.innerText.trim())];
}));

// The connections as the timeline names them.
const FIRST = "ghes.example.com → octo-org";
const SECOND = "ghes.example.com → octo-labs";

// shownFor waits until the timeline, drawn and not busy, shows rows of
// the connection named name only. An empty table does not count: the
// page must have drawn the connection's rows, not merely cleared the
// others'.
function shownFor(name) {
  return page.waitForFunction((name) => {
    const table = document.getElementById("timeline");
    const conns = [...table.querySelectorAll("tbody tr td:nth-child(3)")];
    return table.getAttribute("aria-busy") === "false" && conns.length > 0 && conns.every((td) => td.textContent === name);
  }, name);
}

// slowHistory makes the registry's history answer well after the feature
// gate's, as on a busy machine, so the checks that follow see a redraw
// half way (a wait that passes on an empty table fails them).
async function slowHistory() {
  await page.route(/\/history\?/, async (route) => {
    await new Promise((r) => setTimeout(r, route.request().url().includes("/features/") ? 50 : 800));
    await route.continue();
  });
}

// signedIn signs a person in through single sign-on and waits for the
// timeline.
async function signedIn(who) {
  await signIn(page, gw, who);
  await page.getByRole("heading", { name: "Timeline" }).waitFor();
  await rows.first().waitFor();
}

try {
  await check("signed in as an administrator, the page shows the timeline", () => signedIn());

  await check("a feature switched on in the page appears first, in words, with who did it", async () => {
    await page.getByRole("heading", { name: "GitHub Connect is enabled" }).waitFor();
    await Promise.all([
      page.waitForResponse((r) => r.url().includes("/features/history")),
      page.locator("#toggle-dependabot_alerts").check(),
    ]);
    const top = rows.first();
    await top.filter({ hasText: "Dependabot alerts: off → on" }).waitFor();
    const [when, who, conn, what, change] = (await cells())[0];
    assert.equal(who, "admin@example.com (via gateway)");
    assert.equal(conn, SECOND);
    assert.equal(what, "Feature settings changed");
    assert.equal(change, "Dependabot alerts: off → on");
    assert.ok(Date.now() - Date.parse(when) < 120000, `the change is dated ${when}`);
    await shot("01-feature-change");
  });

  await check("all connections: both connections' changes, newest first, no codes", async () => {
    assert.equal(await filter.inputValue(), "-");
    const all = await cells();
    assert.equal(all.length, 20, "a first page of 20");
    const conns = new Set(all.map((r) => r[2]));
    assert.ok(conns.has(FIRST) && conns.has(SECOND), `connections shown: ${[...conns]}`);
    for (let i = 1; i < all.length; i++) assert.ok(all[i - 1][0] >= all[i][0], `row ${i + 1} is newer than row ${i}`);
    for (const r of all) {
      assert.doesNotMatch(r.slice(1).join(" | "), /[a-z]+_[a-z]+|disconnect_step|CONNECTION_STATE|FEATURE_/, "a raw code is shown");
    }
    const texts = all.map((r) => r[3]);
    assert.ok(texts.includes("Disconnect: the App key was deleted in Vault"), "the disconnect's key step is not in words");
    assert.ok(texts.some((t) => t.startsWith("Disconnect began (moving to a new account)")), "the disconnect's reason is not shown");
    assert.ok(all.some((r) => r[3] === "Every feature was switched off: the connection is no longer connected" && r[1] === "ghconnect, following the connection"), "the gate's switch-off on disconnect");
    assert.ok(all.some((r) => r[4] === "Connected → Disconnecting"), "a state change from → to");
  });

  await check("the words are the services' own: each row says its event's summary", async () => {
    const words = new Set();
    for (const path of ["/v1/connections/-/history", "/v1/connections/-/features/history"]) {
      const resp = await fetch(`${gw}${path}?newestFirst=true&pageSize=20`, { headers: { Authorization: "Bearer " + token } });
      assert.equal(resp.status, 200, `GET ${path}`);
      for (const ev of (await resp.json()).events || []) {
        assert.ok(ev.summary && ev.actionKind, `${ev.action} is served without its words or kind`);
        words.add(ev.summary + (ev.reason ? ` (${ev.reason})` : ""));
      }
    }
    const rows = await cells();
    assert.ok(rows.length > 0, "the timeline shows no rows to compare");
    for (const r of rows) assert.ok(words.has(r[3]), `"${r[3]}" is not a summary the API served`);
  });

  await check("older changes a page at a time, to the first one, none twice", async () => {
    const want = (await total("/v1/connections/-/history")) + (await total("/v1/connections/-/features/history"));
    assert.ok(want > 20, `only ${want} events in all`);
    await more.click();
    await page.waitForFunction(() => document.querySelectorAll("#timeline tbody tr").length > 20);
    await shot("02-older");
    while (await more.isVisible()) {
      const n = await rows.count();
      await more.click();
      await page.waitForFunction((n) => document.querySelectorAll("#timeline tbody tr").length > n, n);
    }
    const all = await cells();
    assert.equal(all.length, want, "every event once");
    for (let i = 1; i < all.length; i++) assert.ok(all[i - 1][0] >= all[i][0], `row ${i + 1} is newer than row ${i}`);
    const last = all[all.length - 1];
    assert.deepEqual([last[2], last[3], last[4]], [FIRST, "Enabling began: the connection record was created", "— → Pending"]);
    assert.match(await page.locator("#timeline-status").textContent(), new RegExp(`Showing the ${want} newest changes of all connections, all there are`));
  });

  await check("filtered to the first connection: only its changes", async () => {
    await slowHistory();
    await filter.focus();
    await filter.selectOption(first);
    await shownFor(FIRST);
    const mine = await cells();
    assert.ok(mine.length > 0);
    assert.ok(mine.every((r) => r[2] === FIRST), "another connection's change is shown");
    assert.equal(mine[0][3], "Disconnect finished: GitHub Connect is disabled");
    assert.ok(mine.some((r) => r[4] === "Unified search: off → on, private repositories not included"), "a setting change of the first connection");
    assert.equal(await filter.evaluate((el) => el === document.activeElement), true, "focus left the filter");
    await shot("03-first-connection");
  });

  await check("filtered to the second connection: only its changes, the page's change first", async () => {
    await filter.focus();
    await filter.selectOption(second);
    await shownFor(SECOND);
    const mine = await cells();
    assert.ok(mine.every((r) => r[2] === SECOND));
    assert.equal(mine[0][4], "Dependabot alerts: off → on");
    assert.ok(!(await more.isVisible()), "Show older changes offered for a connection with fewer than a page");
  });

  await check("an auditor reads the timeline", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("link", { name: "Sign in with single sign-on" }).waitFor();
    await signedIn({ login: "ada@example.com", groups: "ghconnect-auditors" });
    const all = await cells();
    assert.equal(all.length, 20);
    assert.ok(new Set(all.map((r) => r[2])).size === 2, "the auditor does not see both connections");
    await shot("04-auditor");
  });

  await check("a narrow window keeps the timeline inside it, What included", async () => {
    await fitsIn(page, 360);
    const what = await page.locator("#timeline tbody tr td:nth-child(4)").first().boundingBox();
    assert.ok(what && what.width > 0 && what.x >= 0 && what.x + what.width <= 360, `the What column is out of sight: ${JSON.stringify(what)}`);
    await shot("05-narrow");
  });
} catch (e) {
  err = e;
}
await finish(opened, ran, "timeline test", err);
