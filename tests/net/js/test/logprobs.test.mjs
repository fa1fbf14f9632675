// logprobs through the official openai SDK, chat and completions, streamed and not (the
// values themselves are checked against the model's logits in tests/e2e/logprobs_test.cpp),
// plus echo, logit_bias and an unknown field, which the SDK passes through as extra body.
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

function assertSortedTop(top, n) {
  assert.equal(top.length, n);
  for (let i = 1; i < top.length; i++) assert.ok(top[i - 1].logprob >= top[i].logprob);
}

test("chat: logprobs and top_logprobs, streamed and not, agree", async () => {
  const body = { model, messages: [{ role: "user", content: "A girl named Mia" }], max_tokens: 10, temperature: 0,
                 logprobs: true, top_logprobs: 3 };
  const whole = await client.chat.completions.create(body);
  const content = whole.choices[0].logprobs.content;
  assert.equal(content.length, whole.usage.completion_tokens);
  assert.equal(content.map((e) => e.token).join(""), whole.choices[0].message.content);
  for (const e of content) {
    assert.ok(e.logprob <= 0);
    assert.deepEqual(e.bytes, [...Buffer.from(e.token, "utf8")]);
    assertSortedTop(e.top_logprobs, 3);
    assert.equal(e.top_logprobs[0].token, e.token);  // greedy: the chosen token is the most likely
  }

  const stream = await client.chat.completions.create({ ...body, stream: true });
  const streamed = [];
  for await (const chunk of stream)
    for (const c of chunk.choices) if (c.logprobs) streamed.push(...c.logprobs.content);
  assert.equal(streamed.length, content.length);
  streamed.forEach((e, i) => {
    assert.equal(e.token, content[i].token);
    assert.ok(Math.abs(e.logprob - content[i].logprob) < 1e-5);
  });
});

test("completions: logprobs N, streamed and not, agree; text_offset indexes the text", async () => {
  const body = { model, prompt: "The little dog", max_tokens: 8, temperature: 0, logprobs: 2 };
  const whole = await client.completions.create(body);
  const lp = whole.choices[0].logprobs;
  assert.equal(lp.tokens.length, whole.usage.completion_tokens);
  assert.equal(lp.token_logprobs.length, lp.tokens.length);
  lp.tokens.forEach((t, i) => {
    assert.equal(whole.choices[0].text.slice(lp.text_offset[i], lp.text_offset[i] + t.length), t);
    assert.ok(Object.keys(lp.top_logprobs[i]).length >= 2);
    assert.equal(lp.top_logprobs[i][t], lp.token_logprobs[i]);
  });

  const stream = await client.completions.create({ ...body, stream: true });
  const tokens = [];
  for await (const chunk of stream) for (const c of chunk.choices) if (c.logprobs) tokens.push(...c.logprobs.tokens);
  assert.deepEqual(tokens, lp.tokens);
});

test("completions: echo starts the text with the prompt", async () => {
  const r = await client.completions.create({ model, prompt: "A girl named Mia", max_tokens: 4, temperature: 0, echo: true });
  assert.ok(r.choices[0].text.startsWith("A girl named Mia"));
});

test("logit_bias steers, unknown fields are ignored, out-of-range values are typed errors", async () => {
  const base = { model, prompt: "A girl named Mia", max_tokens: 3, temperature: 0, logprobs: 0 };
  const plain = await client.completions.create(base);
  const tok = await (await fetch(`${URL}/tokenize`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: "cat", add_special_tokens: false, return_token_strs: true }),
  })).json();
  const [id, text] = [tok.tokens.at(-1), tok.token_strs.at(-1)];
  const forced = await client.completions.create({ ...base, logit_bias: { [id]: 100 } });
  assert.deepEqual(forced.choices[0].logprobs.tokens, [text, text, text]);

  const extra = await client.completions.create({ ...base, cache_prompt: true, mirostat: 0 });
  assert.equal(extra.choices[0].text, plain.choices[0].text);

  await assert.rejects(client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }],
                                                         logprobs: true, top_logprobs: 21 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.error.param, "top_logprobs");
    return true;
  });
});
