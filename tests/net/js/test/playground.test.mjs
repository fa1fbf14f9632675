// The playground page in headless Chromium (Debian's /usr/bin/chromium via puppeteer-core):
// it streams a completion over the WebSocket endpoint (the test watches the text grow, checks
// the final DOM against a plain HTTP completion, and saves a screenshot); in chat mode it
// holds a multi-turn conversation through /v1/chat/completions, shows tokens/s, and its Stop
// button ends a reply.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import puppeteer from "puppeteer-core";
import { KEY, URL, chatCompletion, completion, waitReady } from "./helpers.mjs";

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

// Opens the page in chat mode; `requests` collects the bodies it posts to /v1/chat/completions.
async function chatPage(maxTokens) {
  const page = await browser.newPage();
  const requests = [];
  page.on("request", (r) => { if (r.url().endsWith("/v1/chat/completions")) requests.push(JSON.parse(r.postData())); });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${URL}/?api_key=${KEY}`, { waitUntil: "networkidle0" });
  await page.select("#mode", "chat");
  await page.$eval("#max_tokens", (el, n) => { el.value = String(n); }, maxTokens);
  return { page, requests, errors };
}

async function send(page, text, turn) {
  await page.$eval("#prompt", (el, t) => { el.value = t; }, text);
  await page.click("#generate");
  await page.waitForFunction((n) => {
    const s = document.getElementById("status");
    return s.dataset.state === "done" && s.textContent.endsWith(`turn ${n}`);
  }, { timeout: 60000 }, turn);
}

test("playground chat: two turns through /v1/chat/completions, tokens/s shown", async () => {
  const { page, requests, errors } = await chatPage(12);
  await send(page, "Hi there", 1);
  await send(page, "Tell me a story.", 2);
  const replies = await page.$$eval("#output .turn.assistant", (els) => els.map((e) => e.textContent));
  const users = await page.$$eval("#output .turn.user", (els) => els.map((e) => e.textContent));
  assert.deepEqual(users, ["Hi there", "Tell me a story."]);
  // The second request carries the whole conversation; the server renders it with the template.
  assert.equal(requests.length, 2);
  assert.equal(requests[0].stream, true);
  assert.deepEqual(requests[1].messages.map((m) => m.role), ["user", "assistant", "user"]);
  const first = { messages: [{ role: "user", content: "Hi there" }], max_tokens: 12, temperature: 0, top_p: 1 };
  const ref1 = await chatCompletion(first);
  assert.equal(replies[0], ref1.choices[0].message.content);
  const ref2 = await chatCompletion({ ...first, messages: [...first.messages,
    { role: "assistant", content: ref1.choices[0].message.content }, { role: "user", content: "Tell me a story." }] });
  assert.equal(replies[1], ref2.choices[0].message.content);
  const status = await page.$eval("#status", (el) => ({ text: el.textContent, rate: Number(el.dataset.rate),
                                                         tokens: Number(el.dataset.tokens) }));
  assert.equal(status.tokens, ref2.usage.completion_tokens);
  assert.ok(status.rate > 0, `tokens/s shown: ${status.text}`);
  assert.match(status.text, /[0-9.]+ tok\/s/);
  assert.deepEqual(errors, []);
  await page.close();
});

test("playground chat: Stop ends a reply early and keeps what was shown", async () => {
  const { page, errors } = await chatPage(480);
  // Click Stop from inside the page the moment the first reply text appears.
  await page.evaluate(() => {
    new MutationObserver((_, obs) => {
      const reply = document.querySelector("#output .turn.assistant");
      if (reply && reply.textContent.length > 0) { obs.disconnect(); document.getElementById("stop").click(); }
    }).observe(document.getElementById("output"), { childList: true, subtree: true, characterData: true });
  });
  await page.$eval("#prompt", (el) => { el.value = "Once upon a time"; });
  await page.click("#generate");
  await page.waitForSelector('#status[data-state="stopped"]', { timeout: 60000 });
  const tokens = await page.$eval("#status", (el) => Number(el.dataset.tokens));
  assert.ok(tokens >= 1 && tokens < 480, `stopped after ${tokens} tokens`);
  assert.equal(await page.$eval("#generate", (el) => el.disabled), false);
  assert.deepEqual(errors, []);
  await page.close();
});
