// The playground page in headless Chromium (Debian's /usr/bin/chromium via puppeteer-core):
// it streams a completion over the WebSocket endpoint; the test watches the text grow,
// checks the final DOM against a plain HTTP completion, and saves a screenshot.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import puppeteer from "puppeteer-core";
import { KEY, URL, completion, waitReady } from "./helpers.mjs";

let browser;
before(async () => {
  await waitReady();
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
           "--no-first-run", "--disable-extensions", "--mute-audio"],
  });
});
after(async () => {
  await browser?.close();
});

test("playground streams a completion and shows it", async () => {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 700 });
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(`${URL}/?api_key=${KEY}`, { waitUntil: "networkidle0" });
  assert.equal(await page.title(), "troupe playground");

  const prompt = "Once upon a time, there was a little dog named";
  await page.$eval("#prompt", (el, p) => { el.value = p; }, prompt);
  await page.$eval("#max_tokens", (el) => { el.value = "48"; });
  // Count how many times the output grows: a streamed reply grows once per token message.
  await page.evaluate(() => {
    window.__growth = 0;
    new MutationObserver(() => window.__growth++).observe(document.getElementById("output"), { childList: true });
  });
  await page.click("#generate");
  await page.waitForSelector('#status[data-state="done"]', { timeout: 60000 });

  const shown = await page.$eval("#output", (el) => el.textContent);
  const status = await page.$eval("#status", (el) => ({ text: el.textContent, tokens: Number(el.dataset.tokens) }));
  const growth = await page.evaluate(() => window.__growth);
  const ref = await completion({ prompt, max_tokens: 48, temperature: 0, top_p: 1 });
  assert.equal(shown, prompt + ref.choices[0].text);
  assert.equal(status.tokens, ref.usage.completion_tokens);
  assert.ok(growth > 5, `the output grew ${growth} times; expected token-by-token streaming`);
  assert.match(status.text, /^done \((stop|length)\)/);
  assert.deepEqual(consoleErrors, []);

  mkdirSync("out", { recursive: true });
  await page.screenshot({ path: "out/playground.png" });
  const png = readFileSync("out/playground.png");
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.ok(png.length > 5000, "a real screenshot, not an empty image");
  await page.close();
});
