// Browser checks of the admin page's health panel, run by
// e2e/ui_health_test.go on a connected system that has issued a token:
// healthy; with GitHub.com (the emulator) failing; with Vault sealed; and
// healthy again. Each line says its state in a word and a mark, not only
// in colour. The script makes the faults itself: the emulator's
// /_emu/faults, Vault's sys/seal and sys/unseal.
// Every check runs and reports; the last line counts them.
import assert from "node:assert/strict";
import { checks, finish, open, signIn } from "./browser.mjs";

const gw = process.env.GATEWAY_URL;
const emu = process.env.GITHUB_API_URL;
const vault = process.env.VAULT_ADDR;
const opened = await open();
const { page, shot } = opened;
const ran = checks(shot);
const { check } = ran;
let err;

const line = (what) => page.locator(`#health li[data-health="${what}"]`);

// expect waits until the line of what says level (its class and its
// word) and its text matches re.
async function expect(what, level, word, re) {
  const l = line(what);
  await page.waitForFunction(([w, cls]) => {
    const li = document.querySelector(`#health li[data-health="${w}"]`);
    return li && li.classList.contains(cls);
  }, [what, level]);
  assert.equal(await l.locator(".word").textContent(), word);
  assert.match(await l.textContent(), re);
}

// again asks the services again and waits for the panel to be redrawn
// (it shows "Checking" lines meanwhile).
async function again() {
  await page.evaluate(() => { document.querySelector("#health").replaceChildren(); });
  await page.getByRole("button", { name: "Check again" }).click();
  await page.waitForFunction(() => {
    const lines = [...document.querySelectorAll("#health li")];
    return lines.length === 7 && !lines.some((li) => li.classList.contains("checking"));
  });
}

async function put(url, body, headers = {}) {
  const r = await fetch(url, { method: "PUT", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`PUT ${url}: ${r.status} ${await r.text()}`);
}

try {
  await signIn(page, gw);
  await page.getByRole("heading", { name: "GitHub Connect is enabled" }).waitFor();
  await page.getByRole("heading", { name: "Health" }).waitFor();

  await check("seven lines from the start: checking, then each answered", async () => {
    assert.equal(await page.locator("#health li").count(), 7);
    await page.waitForFunction(() => ![...document.querySelectorAll("#health li")].some((li) => li.classList.contains("checking")));
  });

  await check("healthy: Vault, GitHub.com with its rate limit, the last sign; the features off", async () => {
    await expect("Vault", "ok", "OK", /Vault: OK — reachable and unsealed$/);
    await expect("GitHub.com", "ok", "OK", /GitHub.com: OK — reachable; \d+ of \d+ requests left this hour \(as of .+\)$/);
    await expect("Signing", "ok", "OK", /Signing: OK — last successful sign .+$/);
    await expect("Dependabot alerts", "off", "Off", /Dependabot alerts: Off — /);
    await expect("License sync", "off", "Off", /License sync: Off — /);
    // Not colour alone: every line has its mark, and the colours differ.
    for (const what of ["Vault", "GitHub.com", "Signing", "Dependabot alerts"]) {
      assert.match(await line(what).locator(".mark").textContent(), /^[✓✗?–]$/);
    }
    await shot("01-healthy");
  });

  await check("GitHub.com failing: a problem, in words, with GitHub.com's status", async () => {
    await put(`${emu}/_emu/faults`, { server_errors: 1000 });
    try {
      await again();
      await expect("GitHub.com", "problem", "Problem", /GitHub.com: Problem — failing: GitHub.com answered 502/);
      await expect("Vault", "ok", "OK", /reachable and unsealed/);
      const [ok, bad] = await Promise.all([line("Vault"), line("GitHub.com")].map((l) => l.evaluate((e) => getComputedStyle(e).borderLeftColor)));
      assert.notEqual(ok, bad, "the problem line's colour differs from the OK line's");
      await shot("02-github-failing");
    } finally {
      await put(`${emu}/_emu/faults`, { server_errors: 0 });
    }
  });

  await check("Vault sealed: a problem that says what to do", async () => {
    await put(`${vault}/v1/sys/seal`, {}, { "X-Vault-Token": process.env.VAULT_TOKEN });
    try {
      await again();
      await expect("Vault", "problem", "Problem", /Vault: Problem — sealed: nothing can be signed until an operator unseals it$/);
      await expect("GitHub.com", "ok", "OK", /reachable/);
      await shot("03-vault-sealed");
    } finally {
      await put(`${vault}/v1/sys/unseal`, { key: process.env.VAULT_UNSEAL_KEY });
    }
  });

  await check("healthy again once Vault is unsealed", async () => {
    await again();
    await expect("Vault", "ok", "OK", /reachable and unsealed$/);
    await expect("GitHub.com", "ok", "OK", /reachable/);
  });
} catch (e) {
  err = e;
}
await finish(opened, ran, "health test", err);
