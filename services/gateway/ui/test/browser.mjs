// What the admin page's browser tests share: Debian's chromium through
// playwright-core, set up for the system e2e/ui_test.go starts, and
// full-page screenshots into $ARTIFACTS.
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

// open launches chromium and opens a page; extra are launch options
// (ignoreDefaultArgs, …).
export async function open(extra = {}) {
  const out = process.env.ARTIFACTS || "artifacts";
  mkdirSync(out, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
      // An HTTPS gateway with a development CA: accept exactly its key.
      ...(process.env.GATEWAY_SPKI ? ["--ignore-certificate-errors-spki-list=" + process.env.GATEWAY_SPKI] : [])],
    ...extra,
  });
  // A context of its own (not browser.newPage's), so a test can open a
  // second tab of the same signed-in person with page.context().newPage().
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const shot = (name) => page.screenshot({ path: `${out}/${name}.png`, fullPage: true });
  return { browser, page, shot, out };
}

// signIn signs a person in through single sign-on, the real redirect flow:
// the page's link, the development identity provider's own sign-in page
// (where the person says who they are and their groups), back to the page.
export async function signIn(page, gw, { login = "admin@example.com", groups = "ghconnect-admins" } = {}) {
  await page.goto(gw + "/");
  await page.getByRole("link", { name: "Sign in with single sign-on" }).click();
  await page.getByLabel("Email").fill(login);
  await page.getByLabel("Groups (comma-separated)").fill(groups);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText(`Signed in as ${login}`).waitFor();
}

// fitsIn narrows the window to width and fails if the page then scrolls
// sideways.
export async function fitsIn(page, width) {
  await page.setViewportSize({ width, height: 800 });
  const scroll = await page.evaluate(() => document.documentElement.scrollWidth);
  if (scroll > width) throw new Error(`the page is ${scroll} px wide in a ${width} px window`);
}

// finish closes the browser after a test's checks, or after what stopped
// them, and prints the count.
export async function finish({ browser, shot, out }, { failures, done }, name, err) {
  if (err) {
    failures.push(String(err));
    console.error(err.stack || err);
    await shot("failure").catch(() => {});
  }
  await browser.close();
  console.log(`${name}: screenshots in ${out}`);
  done();
}

// checks runs named checks that each report rather than stop the script,
// a screenshot of the page as each failure left it. done() prints the
// count and sets the exit code.
export function checks(shot) {
  const failures = [];
  let n = 0;
  async function check(name, fn) {
    n++;
    try {
      await fn();
      console.log(`ok   ${n} ${name}`);
    } catch (e) {
      failures.push(name);
      console.error(`FAIL ${n} ${name}: ${e.stack || e}`);
      await shot(`fail-${String(n).padStart(2, "0")}`).catch(() => {});
    }
  }
  function done() {
    if (failures.length) console.error("failed:\n  " + failures.join("\n  "));
    console.log(`${n - failures.length} passed, ${failures.length} failed`);
    process.exitCode = failures.length ? 1 : 0;
  }
  return { check, failures, done };
}
