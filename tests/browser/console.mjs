// The web console in a real browser (Debian's headless Chromium, driven by playwright-core)
// against `vox serve` on real PostgreSQL and the S3/SQS emulator. Run by
// infra/local/browser_check.sh, which starts the server and passes:
//   VOX_BASE_URL   the console (http://127.0.0.1:PORT)
//   VOX_API_KEY    an admin key
//   VOX_CLIP       a recording to upload
//   VOX_BIN        the vox binary (`vox run --until-idle` processes the upload)
//   VOX_ARTIFACTS  where screenshots and exports are saved
//   VOX_CHROMIUM   the browser (/usr/bin/chromium)
// Every step asserts what a user would see; the first failure stops the run with its reason.

import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

const run = promisify(execFile);
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("VOX_BASE_URL");
const apiKey = env("VOX_API_KEY");
const clip = env("VOX_CLIP");
const vox = env("VOX_BIN");
const artifacts = env("VOX_ARTIFACTS");
mkdirSync(artifacts, { recursive: true });

const started = Date.now();
const step = (text) => console.log(`browser check: ${text} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
const check = (ok, message) => {
  if (!ok) throw new Error(message);
};

const browser = await chromium.launch({
  executablePath: process.env.VOX_CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(20_000);
// Anything the page's policy blocks or its script throws is a failure.
const problems = [];
page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
page.on("pageerror", (e) => problems.push(e.message));
const shot = async (name, target = page) => {
  await target.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
};

try {
  // ---- sign in: a wrong key is refused, the right one opens the recordings
  await page.goto(base + "/");
  await page.locator("#api-key").waitFor();
  await shot("01-sign-in");
  await page.fill("#api-key", "vox_not_a_key");
  await page.click("#signin button[type=submit]");
  await page.locator("#signin-error", { hasText: "Ключ не подошёл" }).waitFor();
  problems.length = 0; // the refused key's 401 is logged by the browser, as it should be
  await page.fill("#api-key", apiKey);
  await page.click("#signin button[type=submit]");
  await page.locator("h1", { hasText: "Записи" }).waitFor();
  const stored = await page.evaluate(() => Object.keys(sessionStorage));
  check(stored.length === 1 && !page.url().includes(apiKey), "the key must live in session storage only");
  step("signed in");

  // ---- upload a recording with its metadata, through the presigned PUT, with progress
  await page.click('nav a[href="#/upload"]');
  await page.locator("#upload-form").waitFor();
  await page.selectOption("#scenario", "design");
  await page.selectOption("#building", "restaurant");
  const offered = await page.locator("#report-types input").evaluateAll((els) => els.map((e) => e.value));
  check(offered.length > 0, "no report types offered for a restaurant design audit");
  await page.selectOption("#building", "hotel");
  const hotel = await page.locator("#report-types input").evaluateAll((els) => els.map((e) => e.value));
  check(hotel.includes("structured-audit"), `hotel report types: ${hotel}`);
  await page.setInputFiles("#file", clip);
  await page.fill("#place", "Гранд Отель");
  await page.fill("#city", "Казань");
  await page.fill("#date", "2026-03-14");
  await page.fill("#employee", "Анна Смирнова");
  await shot("02-upload-form");
  await page.click("#upload-form button[type=submit]");
  await page.locator("#recording").waitFor({ timeout: 60_000 });
  const recordingId = Number(await page.locator("#recording").getAttribute("data-recording-id"));
  check(recordingId > 0, "no recording page after the upload");
  step(`uploaded ${basename(clip)} as recording ${recordingId}`);

  // ---- the functions run; the open page follows the status to done by itself
  const work = run(vox, ["run", "--until-idle"], { maxBuffer: 64 << 20, timeout: 15 * 60_000 });
  await page.goto(base + "/#/recordings");
  await page.locator(`tr[data-recording-id="${recordingId}"]`).waitFor();
  await shot("03-recordings-working");
  await work;
  await page
    .locator(`tr[data-recording-id="${recordingId}"] .status[data-status="done"]`)
    .waitFor({ timeout: 30_000 });
  await shot("04-recordings-done");
  step("the recording reached done and the list showed it");

  // ---- the recording's reports; a report with quotes linked to their moments
  await page.click(`tr[data-recording-id="${recordingId}"] a`);
  await page.locator("#audits a").first().waitFor();
  const auditLinks = await page.locator("#audits a").evaluateAll((els) => els.map((e) => e.getAttribute("href")));
  let quoted = null;
  for (const href of auditLinks) {
    await page.goto(base + "/" + href);
    await page.locator("#report").waitFor();
    if ((await page.locator("#quotes .play").count()) > 0) {
      quoted = href;
      break;
    }
  }
  check(quoted, `no report of ${auditLinks.length} has a quote with its moment`);
  await shot("05-report");
  const quote = page.locator("#quotes .play").last();
  const startMs = Number(await quote.getAttribute("data-start-ms"));
  await quote.click();
  await page.waitForFunction(
    (ms) => {
      const p = document.getElementById("player");
      return p.readyState >= 1 && Math.abs(p.currentTime - ms / 1000) < 2.5;
    },
    startMs,
    { timeout: 20_000 },
  );
  const heard = await page.evaluate(() => document.getElementById("player").currentTime);
  step(`a quote at ${startMs} ms played the recording from ${heard.toFixed(2)} s`);

  // ---- exports: Markdown and PDF hold the report's text
  const title = (await page.locator("#report").textContent()).trim();
  const saveExport = async (format) => {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click(`button[data-export="${format}"]`)]);
    const path = join(artifacts, `report.${format}`);
    await download.saveAs(path);
    return path;
  };
  const md = readFileSync(await saveExport("md"), "utf8");
  check(md.includes(title.split(" — ")[0]), `the Markdown export lacks the title ${title}`);
  const docx = readFileSync(await saveExport("docx"));
  check(docx.subarray(0, 2).toString() === "PK", "the DOCX export is not a ZIP");
  if (process.env.VOX_CHECK_PDF !== "0") {
    const pdf = await saveExport("pdf");
    const { stdout } = await run("pdftotext", ["-enc", "UTF-8", pdf, "-"]);
    check(stdout.includes(title.split(" — ")[0]), `the PDF's text lacks the title ${title}`);
    step("exported the report as Markdown, DOCX and PDF");
  } else {
    step("exported the report as Markdown and DOCX");
  }

  // ---- the transcript beside the player, the line being heard followed
  await page.click('a[href^="#/transcripts/"]');
  await page.locator("#segments li").first().waitFor();
  const segments = page.locator("#segments li");
  const count = await segments.count();
  const target = segments.nth(Math.min(1, count - 1));
  const segStart = Number(await target.getAttribute("data-start-ms"));
  await target.click();
  await page.waitForFunction(
    (ms) => Math.abs(document.getElementById("player").currentTime - ms / 1000) < 2.5,
    segStart,
  );
  await page.evaluate(() => document.getElementById("player").dispatchEvent(new Event("timeupdate")));
  await page.locator("#segments li.current").waitFor();
  await shot("06-transcript");
  step(`the transcript (${count} segments) plays from a clicked line and marks the current one`);

  // ---- search, a fast answer with citations, a deep question with progress
  await page.click('nav a[href="#/search"]');
  await page.fill("#query", "освещение в лобби");
  await page.click("#do-search");
  await page.locator("#hits li").first().waitFor();
  const hits = await page.locator("#hits li").count();
  await shot("07-search");
  await page.fill("#query", "Что не так с освещением в лобби?");
  await page.click("#do-answer");
  await page.locator("#answer").waitFor();
  const found = await page.locator("#answer").getAttribute("data-found");
  const cited = await page.locator("#answer .statements .play").count();
  check(found === "true" && cited > 0, `the fast answer found=${found} with ${cited} playable citations`);
  await page.locator("#answer .statements .play").first().click();
  await page.waitForFunction(() => document.getElementById("player").readyState >= 1);
  await shot("08-answer");
  await page.click("#do-deep");
  await page.locator("#answer").waitFor({ timeout: 120_000 });
  await shot("09-deep-question");
  step(`search gave ${hits} hits; the fast answer cites ${cited} moment(s); the deep question finished`);

  // ---- keys: an admin creates an analyst's key (shown once, usable), then revokes it
  page.on("dialog", (dialog) => dialog.accept());
  await page.click('nav a[href="#/keys"]');
  await page.locator("#key-form").waitFor();
  await page.fill("#key-name", "browser-analyst");
  await page.selectOption("#key-role", "analyst");
  await page.click("#key-form button[type=submit]");
  const newKey = (await page.locator("#new-key code").textContent()).trim();
  check(newKey.startsWith("vox_"), `no key shown: ${newKey}`);
  const status = async (key) =>
    page.evaluate(async (k) => (await fetch("/recordings?limit=1", { headers: { Authorization: `Bearer ${k}` } })).status, key);
  check((await status(newKey)) === 200, "the new analyst key does not work");
  const row = page.locator("#keys tr", { hasText: "browser-analyst" });
  await row.locator("button.revoke").click();
  await page.locator('#keys tr[data-revoked="true"]', { hasText: "browser-analyst" }).waitFor();
  const before = problems.length;
  check((await status(newKey)) === 401, "the revoked key still works");
  // The revoked key's 401 is logged by the browser, as it should be; nothing else may be.
  const added = problems.splice(before);
  check(added.every((p) => p.includes("401")), `the page logged errors: ${added.join(" | ")}`);
  await shot("10-keys");
  step("an analyst key was created, worked, was revoked and was refused");

  // ---- narrow screens: the pages stay usable at 390 px
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(base + "/#/recordings");
  await page.locator(`tr[data-recording-id="${recordingId}"]`).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `the recordings page scrolls sideways by ${overflow} px at 390 px`);
  await shot("11-recordings-390px");
  await page.goto(base + "/" + quoted);
  await page.locator("#report").waitFor();
  await shot("12-report-390px");

  check(problems.length === 0, `the page logged errors: ${problems.join(" | ")}`);
  writeFileSync(join(artifacts, "result.json"), JSON.stringify({ recordingId, hits, cited, passed: true }, null, 2));
  step("passed");
} catch (error) {
  await shot("failure").catch(() => {});
  console.error(`browser check failed: ${error.message}`);
  if (problems.length) console.error(`page errors: ${problems.join(" | ")}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
