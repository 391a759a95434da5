// Browser checks of enabling GitHub Connect through GitHub.com's own pages
// (the emulator shows them, not approving at once), run by
// e2e/ui_pages_test.go: the admin sees what the App will be able to do and
// cancels; comes back and creates it, then cancels its installation; comes
// back and installs it on one selected repository, which the admin page
// then shows. Every check runs and reports; the last line counts them.
import assert from "node:assert/strict";
import { checks, finish, open, signIn } from "./browser.mjs";

const gw = process.env.GATEWAY_URL;
const opened = await open();
const { page, shot } = opened;
const ran = checks(shot);
const { check } = ran;
let err;

const notice = page.locator("#notice");
const backHome = () => page.waitForURL((u) => u.origin === new URL(gw).origin && u.pathname === "/");

try {
  await signIn(page, gw);
  await page.getByRole("heading", { name: "GitHub Connect is not enabled" }).waitFor();

  await check("GitHub.com shows what the App asks for; cancelled, nothing is created", async () => {
    await page.getByLabel("Organization login or enterprise slug").fill("octo-org");
    await page.getByRole("button", { name: "Enable GitHub Connect" }).click();
    await page.getByRole("heading", { name: "Create GitHub App for octo-org" }).waitFor();
    const asked = await page.locator("main ul li").allTextContents();
    assert.ok(asked.some((p) => /^Metadata: read$/i.test(p.trim())), `the page lists ${JSON.stringify(asked)}`);
    await shot("01-create-app");
    const back = backHome();
    await page.getByRole("button", { name: "Cancel" }).click();
    await back;
    await notice.getByText("You cancelled creating the App on GitHub.com, so nothing was created there.", { exact: false }).waitFor();
    assert.match(await page.locator("#pending-what").textContent(), /has not been created on GitHub.com yet/);
    await shot("02-creation-cancelled");
  });

  await check("created, then the installation cancelled: the App waits to be installed", async () => {
    await page.getByRole("button", { name: "Continue on GitHub.com" }).click();
    await page.getByRole("button", { name: "Create GitHub App" }).click();
    await page.getByRole("heading", { name: /^Install / }).waitFor();
    assert.ok(await page.getByLabel("All repositories").isChecked(), "all repositories is not the default");
    await shot("03-install");
    const back = backHome();
    await page.getByRole("button", { name: "Cancel" }).click();
    await back;
    await notice.getByText("You cancelled the App's installation on GitHub.com, so it was not installed.", { exact: false }).waitFor();
    assert.match(await page.locator("#pending-what").textContent(), /was created on GitHub.com for octo-org and waits to be installed there/);
  });

  await check("installed on one selected repository, which the page shows", async () => {
    await page.getByRole("button", { name: "Continue on GitHub.com" }).click();
    await page.getByRole("heading", { name: /^Install / }).waitFor();
    await page.getByLabel("Only select repositories").check();
    await page.getByLabel("octo-org/hello-world").check();
    await page.getByRole("button", { name: "Install" }).click();
    await page.getByRole("heading", { name: "GitHub Connect is enabled" }).waitFor();
    const covered = page.locator("#repos-record dt", { hasText: "Repositories covered" }).locator("xpath=following-sibling::dd[1]");
    await page.locator("#repos-record dd", { hasText: "selected when installing" }).waitFor();
    assert.equal(await covered.textContent(), "1 selected when installing: octo-org/hello-world");
    await shot("04-enabled-selected");
  });
} catch (e) {
  err = e;
}
await finish(opened, ran, "pages test", err);
