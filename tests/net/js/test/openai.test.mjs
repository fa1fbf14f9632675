// The official openai SDK against the live daemon: completions and chat, streaming (SSE
// with include_usage, ending in [DONE]) and not, plus its error classes.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { KEY, URL, waitReady } from "./helpers.mjs";

let model;
let client;
before(async () => {
  model = await waitReady();
  client = new OpenAI({ baseURL: `${URL}/v1`, apiKey: KEY, maxRetries: 0 });
});

test("models.list names the served model", async () => {
  const page = await client.models.list();
  assert.deepEqual(page.data.map((m) => m.id), [model]);
});

test("completions: non-streaming", async () => {
  const r = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 24, temperature: 0 });
  assert.equal(r.object, "text_completion");
  assert.equal(r.choices.length, 1);
  assert.ok(r.choices[0].text.length > 0);
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 24);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test("completions: streaming matches non-streaming, usage chunk last", async () => {
  const body = { model, prompt: "The little dog", max_tokens: 32, temperature: 0, ignore_eos: true };
  const whole = await client.completions.create(body);
  const stream = await client.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let text = "";
  let chunks = 0;
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
    chunks++;
  }
  assert.ok(chunks > 3, `expected many chunks, got ${chunks}`);
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, "length");
  assert.deepEqual(usage, whole.usage);
});

test("chat: non-streaming and streaming agree", async () => {
  const messages = [{ role: "user", content: "Once upon a time, there was a cat" }];
  const whole = await client.chat.completions.create({ model, messages, max_tokens: 20, temperature: 0 });
  assert.equal(whole.object, "chat.completion");
  assert.equal(whole.choices[0].message.role, "assistant");
  assert.ok(whole.choices[0].message.content.length > 0);

  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 20, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = "";
  let role = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      role ??= c.delta.role ?? null;
      text += c.delta.content ?? "";
    }
  }
  assert.equal(role, "assistant");
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

test("raw SSE framing ends with data: [DONE]", async () => {
  const r = await fetch(`${URL}/v1/chat/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 5, stream: true }),
  });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^text\/event-stream/);
  const raw = await r.text();
  assert.ok(raw.endsWith("data: [DONE]\n\n"), raw.slice(-80));
  for (const ev of raw.trim().split("\n\n")) assert.match(ev, /^data: /);
});

test("n and several prompts give indexed choices", async () => {
  const r = await client.completions.create({ model, prompt: ["A cat", "A dog"], n: 2, max_tokens: 8, temperature: 0.8, seed: 7 });
  assert.equal(r.choices.length, 4);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3]);
});

test("errors arrive as the SDK's typed errors", async () => {
  await assert.rejects(client.completions.create({ model, prompt: "x", temperature: 1000 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.status, 400);
    assert.equal(e.error.param, "temperature");
    return true;
  });
  await assert.rejects(client.completions.create({ model: "no-such-model", prompt: "x" }), OpenAI.NotFoundError);
  const wrongKey = new OpenAI({ baseURL: `${URL}/v1`, apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(wrongKey.models.list(), OpenAI.AuthenticationError);
});
