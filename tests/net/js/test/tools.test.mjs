// Tool calling with the official openai client against a daemon serving a random-weight
// Qwen3-shaped model (`troupe synth`, 512 positions: prompts and max_tokens stay small) with Qwen3's real tokenizer and chat template and
// `--tool-call-parser hermes`. The weights are random, so whatever the model "wants" to
// write, only the grammar makes tool_choice "required" and a named function produce calls:
// every returned call must name a given function and its arguments must validate with ajv
// against that function's parameter schema. Also: streamed delta.tool_calls, a round trip
// with role "tool" through the template, and the 400s.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import OpenAI from "openai";
import { KEY, URL, waitReady } from "./helpers.mjs";

const weather = {
  type: "object",
  properties: {
    city: { type: "string", minLength: 1, maxLength: 12 },
    unit: { enum: ["celsius", "fahrenheit"] },
    days: { type: "integer", minimum: 1, maximum: 7 },
  },
  required: ["city", "unit"],
  additionalProperties: false,
};
const search = {
  type: "object",
  properties: {
    query: { type: "string", maxLength: 10 },
    filters: {
      type: "object",
      properties: { lang: { enum: ["en", "de"] }, safe: { type: "boolean" } },
      required: ["lang"],
      additionalProperties: false,
    },
    tags: { type: "array", items: { type: "string", maxLength: 6 }, maxItems: 3 },
  },
  required: ["query", "filters"],
  additionalProperties: false,
};
const tools = [
  { type: "function", function: { name: "get_weather", description: "Current weather", parameters: weather } },
  { type: "function", function: { name: "search", description: "Web search", parameters: search } },
];
const ajv = new Ajv2020({ strict: false });
const validators = { get_weather: ajv.compile(weather), search: ajv.compile(search) };

function checkCall(call, names = ["get_weather", "search"]) {
  assert.equal(call.type, "function");
  assert.match(call.id, /^call_/);
  assert.ok(names.includes(call.function.name), call.function.name);
  const args = JSON.parse(call.function.arguments);
  const validate = validators[call.function.name];
  assert.ok(validate(args), `${call.function.arguments}: ${ajv.errorsText(validate.errors)}`);
}

let dir;
let daemon;
let client;
let model;
before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "troupe-tools-"));
  const tokenizer = path.join(process.env.TROUPE_MODELS, "..", "tokenizers", "qwen3");
  const modelDir = path.join(dir, "qwen3-tiny");
  execFileSync(process.env.TROUPE_BIN, ["synth", "--shape", "qwen3-tiny", "--tokenizer", tokenizer, "--out", modelDir]);
  const env = { ...process.env };
  delete env.TROUPE_API_KEY;  // the daemon would take it as its key
  daemon = spawn(process.env.TROUPE_BIN,
    ["serve", "--model", modelDir, "--port", "0", "--warmup", "0", "--tool-call-parser", "hermes"],
    { stdio: ["ignore", "pipe", "pipe"], env });
  let log = "";
  const base = await new Promise((resolve, reject) => {
    const onData = (d) => {
      log += d;
      const m = log.match(/listening on (http:\/\/[^\s]+)/);
      if (m) resolve(m[1].replace(/\/$/, ""));
    };
    daemon.stdout.on("data", onData);
    daemon.stderr.on("data", onData);
    daemon.on("exit", (code) => reject(new Error(`tools daemon exited (${code}): ${log}`)));
  });
  for (let i = 0; i < 1200; i++) {
    try {
      if ((await fetch(`${base}/health`)).status === 200) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0 });
  [{ id: model }] = (await client.models.list()).data;
});
after(() => {
  daemon?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const messages = [{ role: "user", content: "What is the weather in Paris?" }];

test("tool_choice required: every call names a tool and its arguments validate (non-streaming)", async () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const r = await client.chat.completions.create({
      model, messages, tools, tool_choice: "required", parallel_tool_calls: false,
      max_tokens: 150, temperature: 1, seed,
    });
    const choice = r.choices[0];
    assert.equal(choice.finish_reason, "tool_calls", JSON.stringify(choice));
    assert.equal(choice.message.content, null);
    assert.equal(choice.message.tool_calls.length, 1);
    checkCall(choice.message.tool_calls[0]);
  }
  // Parallel calls: one or more; complete ones validate (random weights may run to max_tokens).
  const r = await client.chat.completions.create({
    model, messages, tools, tool_choice: "required", max_tokens: 150, temperature: 1, seed: 9,
  });
  assert.ok(r.choices[0].message.tool_calls.length >= 1);
  for (const call of r.choices[0].message.tool_calls) checkCall(call);
});

test("a named function: always that function, non-streaming and streaming", async () => {
  const body = {
    model, messages, tools, tool_choice: { type: "function", function: { name: "search" } },
    max_tokens: 150, temperature: 1,
  };
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ ...body, seed });
    assert.equal(r.choices[0].finish_reason, "tool_calls");
    assert.equal(r.choices[0].message.tool_calls.length, 1);
    checkCall(r.choices[0].message.tool_calls[0], ["search"]);

    // The stream: delta.tool_calls with index, id, type and name first, then the arguments
    // in pieces as they are generated (only index and function.arguments), as OpenAI sends.
    const stream = await client.chat.completions.create({ ...body, seed, stream: true });
    const calls = [];
    const pieces = [];
    let finish = null;
    let content = "";
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (!c) continue;
      content += c.delta?.content ?? "";
      for (const d of c.delta?.tool_calls ?? []) {
        if (!calls[d.index]) {
          assert.ok(d.id && d.type === "function" && d.function?.name, JSON.stringify(d));
          calls[d.index] = { id: d.id, type: d.type, function: { name: d.function.name, arguments: "" } };
          pieces[d.index] = [];
        } else {
          assert.equal(d.id, undefined, JSON.stringify(d));
          assert.equal(d.function?.name, undefined, JSON.stringify(d));
        }
        calls[d.index].function.arguments += d.function?.arguments ?? "";
        if (d.function?.arguments) pieces[d.index].push(d.function.arguments);
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
    assert.equal(finish, "tool_calls");
    assert.equal(content, "");
    assert.equal(calls.length, 1);
    assert.ok(pieces[0].length > 1, `arguments in one piece: ${JSON.stringify(pieces[0])}`);
    assert.equal(typeof JSON.parse(pieces[0].join("")), "object");
    checkCall(calls[0], ["search"]);
    // Same seed, same call.
    assert.equal(calls[0].function.arguments, r.choices[0].message.tool_calls[0].function.arguments);
  }
});

test("a tool round trip: the call and its result (role tool) render back through the template", async () => {
  const first = await client.chat.completions.create({
    model, messages, tools, tool_choice: { type: "function", function: { name: "get_weather" } },
    max_tokens: 150, temperature: 0,
  });
  const call = first.choices[0].message.tool_calls[0];
  checkCall(call, ["get_weather"]);
  const conversation = [
    ...messages,
    first.choices[0].message,
    { role: "tool", tool_call_id: call.id, content: JSON.stringify({ temperature: 21, unit: "celsius" }) },
  ];
  const second = await client.chat.completions.create({ model, messages: conversation, tools, max_tokens: 8, temperature: 0 });
  assert.ok(["stop", "length", "tool_calls"].includes(second.choices[0].finish_reason));
  assert.ok(second.usage.prompt_tokens > first.usage.prompt_tokens);
  // What the model saw: Qwen3's template, with the call as a mapping and the result.
  const base = client.baseURL.replace(/\/v1$/, "");
  const tok = await (await fetch(`${base}/tokenize`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ messages: conversation, tools }),
  })).json();
  const prompt = (await (await fetch(`${base}/detokenize`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ tokens: tok.tokens }),
  })).json()).prompt;
  assert.ok(prompt.includes("<tools>\n{\"type\": \"function\""), prompt);
  assert.ok(prompt.includes(`<tool_call>\n{"name": "get_weather", "arguments": {`), prompt);
  assert.ok(prompt.includes("<tool_response>\n{\"temperature\":21,\"unit\":\"celsius\"}\n</tool_response>"), prompt);
});

test("tool errors are 400s naming the field", async () => {
  const bad = async (c, body) => {
    try {
      await c.chat.completions.create({ max_tokens: 4, messages, ...body });
    } catch (e) {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      return e;
    }
    assert.fail("expected a 400");
  };
  let e = await bad(client, { model, tools, tool_choice: { type: "function", function: { name: "nope" } } });
  assert.equal(e.param, "tool_choice");
  e = await bad(client, { model, tools: [{ type: "function", function: { name: "f", parameters: "x" } }] });
  assert.equal(e.param, "tools[0].function.parameters");
  // run.sh's daemon: no --tool-call-parser, and TinyStories-656K.
  const main = new OpenAI({ baseURL: `${URL}/v1`, apiKey: KEY, maxRetries: 0 });
  const mainModel = await waitReady();
  e = await bad(main, { model: mainModel, tools, tool_choice: "required" });
  assert.equal(e.param, "tool_choice");
  assert.match(e.message, /--tool-call-parser/);
  // Without a parser, auto only renders the tools: plain content comes back.
  const plain = await main.chat.completions.create({ model: mainModel, messages, tools, max_tokens: 4 });
  assert.equal(plain.choices[0].message.tool_calls ?? undefined, undefined);
});
