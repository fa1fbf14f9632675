// The prompt's logprobs through the official openai SDK: completions' echo with logprobs
// (OpenAI's shape: the prompt's tokens first, the first without a logprob), streamed and
// not, and vLLM's prompt_logprobs, which the SDK passes through as an extra body field.
// (Values against the model's logits: tests/e2e/prompt_logprobs_api_test.cpp.)
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

const PROMPT = "A girl named Mia liked to";

// The logprobs object of an echoed completion: the prompt's tokens then the generated ones.
function checkEcho(lp, text, promptTokens, completionTokens) {
  assert.ok(text.startsWith(PROMPT));
  assert.equal(lp.tokens.length, promptTokens + completionTokens);
  assert.equal(lp.token_logprobs.length, lp.tokens.length);
  assert.equal(lp.top_logprobs.length, lp.tokens.length);
  assert.equal(lp.text_offset.length, lp.tokens.length);
  assert.equal(lp.token_logprobs[0], null);
  assert.equal(lp.top_logprobs[0], null);
  for (let i = 1; i < lp.tokens.length; i++) {
    assert.ok(lp.token_logprobs[i] <= 0);
    assert.equal(lp.top_logprobs[i][lp.tokens[i]], lp.token_logprobs[i]);
    assert.ok(Object.keys(lp.top_logprobs[i]).length >= 2);
    assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1]);
    assert.ok(lp.text_offset[i] <= text.length);
  }
  // The generated tokens start where the echoed prompt ends, each where its text is.
  assert.equal(lp.text_offset[promptTokens], PROMPT.length);
  for (let i = promptTokens; i < lp.tokens.length; i++)
    assert.equal(text.slice(lp.text_offset[i], lp.text_offset[i] + lp.tokens[i].length), lp.tokens[i]);
}

test("completions: echo with logprobs covers the prompt, streamed and not alike", async () => {
  const body = { model, prompt: PROMPT, max_tokens: 6, temperature: 0, echo: true, logprobs: 2 };
  const whole = await client.completions.create(body);
  const lp = whole.choices[0].logprobs;
  checkEcho(lp, whole.choices[0].text, whole.usage.prompt_tokens, whole.usage.completion_tokens);

  const stream = await client.completions.create({ ...body, stream: true });
  let text = "";
  const got = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let first = true;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      if (first) {  // the echoed prompt with its logprobs
        assert.equal(c.text, PROMPT);
        assert.equal(c.logprobs.tokens.length, whole.usage.prompt_tokens);
        first = false;
      }
      text += c.text;
      if (c.logprobs) for (const k of Object.keys(got)) got[k].push(...c.logprobs[k]);
    }
  }
  assert.equal(text, whole.choices[0].text);
  assert.deepEqual(got.tokens, lp.tokens);
  assert.deepEqual(got.text_offset, lp.text_offset);
  got.token_logprobs.forEach((v, i) => {
    if (i === 0) assert.equal(v, null);
    else assert.ok(Math.abs(v - lp.token_logprobs[i]) < 1e-5);
  });
});

test("vLLM's prompt_logprobs on completions and chat", async () => {
  const r = await client.completions.create({ model, prompt: PROMPT, max_tokens: 2, prompt_logprobs: 1 });
  const pl = r.choices[0].prompt_logprobs;
  assert.equal(pl.length, r.usage.prompt_tokens);
  assert.equal(pl[0], null);
  for (const d of pl.slice(1)) {
    const entries = Object.values(d);
    assert.ok(entries.length === 1 || entries.length === 2);
    for (const e of entries) {
      assert.ok(e.logprob <= 0);
      assert.ok(e.rank >= 1);
      assert.equal(typeof e.decoded_token, "string");
    }
  }
  const chat = await client.chat.completions.create({
    model, messages: [{ role: "user", content: PROMPT }], max_tokens: 2, prompt_logprobs: 0, stream: true });
  let carried = 0;
  for await (const chunk of chat) {
    if (!chunk.prompt_logprobs) continue;
    carried++;
    assert.equal(chunk.prompt_logprobs[0], null);
    for (const d of chunk.prompt_logprobs.slice(1)) assert.equal(Object.keys(d).length, 1);  // the token itself
  }
  assert.equal(carried, 1);
});
