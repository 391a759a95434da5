// Browser checks of the admin page's status of the scheduled uploads, run
// by e2e/jobs_test.go after it connected the server to the enterprise
// octo-corp, reported licensed users and counts, and turned license sync
// and Server Statistics on: each feature shows how sending goes, its last
// run and result, the next run, and what GitHub.com read back.
// Every check runs and reports; the last line counts them.
import assert from "node:assert/strict";
import { checks, finish, open, signIn } from "./browser.mjs";

const gw = process.env.GATEWAY_URL;
const opened = await open();
const { page, shot } = opened;
const ran = checks(shot);
const { check } = ran;
let err;

const row = (list, k) => page.locator(`${list} dt`, { hasText: k }).locator("xpath=following-sibling::dd[1]");

try {
  await signIn(page, gw);
  await page.getByRole("heading", { name: "GitHub Connect is enabled" }).waitFor();

  await check("license sync: sent, GitHub.com's count read back", async () => {
    const lic = "#feature-license_sync #license-status";
    await row(lic, "Sending").waitFor();
    assert.match(await row(lic, "Sending").textContent(), /^sent; the next run is at /);
    assert.equal(await row(lic, "Licensed users on the server").textContent(), "2");
    assert.match(await row(lic, "Last run").textContent(), /: 2 licensed users sent \(hashed\); GitHub.com counts 2 of \d+ seats consumed$/);
    assert.match(await row(lic, "GitHub.com's count").textContent(), /^2 of \d+ seats consumed; its last sync of this server .+: success$/);
    assert.equal(await row(lic, "Last error").textContent(), "none");
    assert.ok(await page.locator("#toggle-license_sync").isChecked());
  });

  await check("server statistics: sent, the day held on GitHub.com", async () => {
    const st = "#feature-server_statistics #stats-status";
    await row(st, "Sending").waitFor();
    assert.match(await row(st, "Sending").textContent(), /^sent; the next run is at /);
    assert.notEqual(await row(st, "Last counts from the server").textContent(), "none yet: nothing to send");
    assert.match(await row(st, "Last run").textContent(), /: the statistics of \d{4}-\d\d-\d\d sent; GitHub.com holds 1 days of this server's/);
    assert.match(await row(st, "Held on GitHub.com").textContent(), /^GitHub.com holds 1 of this server's days, the newest \d{4}-\d\d-\d\d$/);
    assert.equal(await row(st, "Last error").textContent(), "none");
    await shot("01-jobs");
  });
} catch (e) {
  err = e;
}
await finish(opened, ran, "jobs test", err);
