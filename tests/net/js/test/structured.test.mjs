// Structured output against live daemons on both shared models: every completion under a
// JSON schema (tests/grammar/schemas, 50+ of increasing difficulty), greedy and sampled,
// parses and validates with ajv; regex and choice outputs always match; the official openai
// client's response_format json_schema works streamed and not; bad constraints are 400s.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import OpenAI from "openai";
import { KEY, URL, waitReady } from "./helpers.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const schemaDir = path.join(here, "..", "..", "..", "grammar", "schemas");
const schemas = readdirSync(schemaDir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => ({ name: f, schema: JSON.parse(readFileSync(path.join(schemaDir, f), "utf8")) }));

// The second model gets its own daemon (run.sh's serves TinyStories-656K).
let second;
let secondUrl;
async function startSecond() {
  const model = path.join(process.env.TROUPE_MODELS, "stories260k", "stories260K.gguf");
  // Without the suite's TROUPE_API_KEY: the daemon would take it as its key.
  const env = { ...process.env };
  delete env.TROUPE_API_KEY;
  second = spawn(process.env.TROUPE_BIN, ["serve", "--model", model, "--port", "0", "--warmup", "0"], {
    stdio: ["ignore", "pipe", "pipe"],
    env,
  });
  let log = "";
  return new Promise((resolve, reject) => {
    const onData = (d) => {
      log += d;
      const m = log.match(/listening on (http:\/\/[^\s]+)/);
      if (m) resolve(m[1].replace(/\/$/, ""));
    };
    second.stdout.on("data", onData);
    second.stderr.on("data", onData);
    second.on("exit", (code) => reject(new Error(`stories260K daemon exited (${code}): ${log}`)));
  });
}

async function waitHealthy(base) {
  for (let i = 0; i < 1200; i++) {
    try {
      if ((await fetch(`${base}/health`)).status === 200) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${base} not ready in time`);
}

let model;
let client;
let secondClient;
before(async () => {
  model = await waitReady();
  client = new OpenAI({ baseURL: `${URL}/v1`, apiKey: KEY, maxRetries: 0 });
  secondUrl = await startSecond();
  await waitHealthy(secondUrl);
  secondClient = new OpenAI({ baseURL: `${secondUrl}/v1`, apiKey: "unused", maxRetries: 0 });
});
after(() => second?.kill());

async function complete(base, key, body) {
  const r = await fetch(`${base}/v1/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...(key ? { Authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  });
  const json = await r.json();
  return { status: r.status, json };
}

const prompts = ["Once upon a time", "Tom and Lily went to the park. They"];

// TinyStories-656K's vocabulary has no token for '{', '[', ']' or '@' and no byte fallback:
// it cannot write a JSON object or array, an e-mail address, nor most non-ASCII text (the
// grammar then allows only EOS and the output ends early). It gets the schemas it can write; stories260K (byte
// fallback) gets all of them.
function writable(schema) {
  const text = JSON.stringify(schema);
  return !/"(object|array)"|"const":\{|@/.test(text) && /^[\x00-\x7f]*$/.test(text);
}

for (const [label, base, key, all] of [
  ["TinyStories-656K", () => URL, KEY, false],
  ["stories260K", () => secondUrl, null, true],
]) {
  test(`${label}: every completion under each JSON schema it can write validates with ajv`, async () => {
    assert.ok(schemas.length >= 50);
    const ajv = new Ajv2020({ strict: false });
    let checked = 0;
    const mine = schemas.filter(({ schema }) => all || writable(schema));
    assert.ok(mine.length >= (all ? 50 : 15), `${mine.length} schemas`);
    for (const { name, schema } of mine) {
      const validate = ajv.compile(schema);
      // Greedy and two seeded samples: whatever the model "wants" to say.
      for (const [i, sampling] of [{ temperature: 0 }, { temperature: 1, seed: 1 }, { temperature: 1.2, seed: 2 }].entries()) {
        const body = {
          prompt: prompts[i % prompts.length],
          max_tokens: 400,
          ...sampling,
          response_format: { type: "json_schema", json_schema: { name: "t", schema, strict: true } },
        };
        const { status, json } = await complete(base(), key, body);
        assert.equal(status, 200, `${name}: ${JSON.stringify(json)}`);
        const { text, finish_reason: finish } = json.choices[0];
        assert.equal(finish, "stop", `${name} ${JSON.stringify(sampling)}: ran out of tokens: ${text}`);
        let doc;
        assert.doesNotThrow(() => (doc = JSON.parse(text)), `${name}: not JSON: ${text}`);
        assert.ok(validate(doc), `${name}: ${text} fails the schema: ${ajv.errorsText(validate.errors)}`);
        checked++;
      }
    }
    assert.equal(checked, mine.length * 3);
  });

  test(`${label}: guided_regex and guided_choice outputs always match`, async () => {
    const regexes = ["[A-Z][a-z]{2,8} (ran|saw|had) a [a-z]{3,10}\\.", "\\d{1,3}(,\\d{3}){0,3}", "(yes|no)!{0,3}", "[a-z ]{10,20}"];
    for (const re of regexes) {
      for (const seed of [1, 2, 3]) {
        const { status, json } = await complete(base(), key, { prompt: "Once", max_tokens: 200, temperature: 1, seed, guided_regex: re });
        assert.equal(status, 200, JSON.stringify(json));
        const { text, finish_reason: finish } = json.choices[0];
        assert.equal(finish, "stop", `guided_regex ${re}: ${text}`);
        assert.match(text, new RegExp(`^(?:${re})$`), `guided_regex ${re}`);
      }
    }
    const choices = ["happy", "sad", "very happy", "😀"];
    for (const seed of [1, 2, 3, 4, 5]) {
      const { json } = await complete(base(), key, { prompt: "She felt", max_tokens: 20, temperature: 1.5, seed, guided_choice: choices });
      assert.ok(choices.includes(json.choices[0].text), json.choices[0].text);
    }
  });
}

const person = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 20 },
    age: { type: "integer", minimum: 0, maximum: 120 },
    pets: { type: "array", items: { enum: ["dog", "cat", "bird"] }, maxItems: 3 },
  },
  required: ["name", "age", "pets"],
  additionalProperties: false,
};

// On stories260K: TinyStories-656K cannot write '{' (see above).
test("openai client: response_format json_schema, non-streaming and streaming (stories260K)", async () => {
  const ajv = new Ajv2020();
  const validate = ajv.compile(person);
  const client = secondClient;
  const [{ id: model }] = (await client.models.list()).data;
  const body = {
    model,
    messages: [{ role: "user", content: "Describe a person." }],
    max_tokens: 300,
    temperature: 0,
    response_format: { type: "json_schema", json_schema: { name: "person", schema: person, strict: true } },
  };
  const whole = await client.chat.completions.create(body);
  const content = whole.choices[0].message.content;
  assert.equal(whole.choices[0].finish_reason, "stop");
  assert.ok(validate(JSON.parse(content)), content);

  const stream = await client.chat.completions.create({ ...body, stream: true });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
  assert.equal(text, content);

  // Any object: free-form keys and strings may run to max_tokens; a finished one parses.
  const obj = await client.chat.completions.create({ ...body, response_format: { type: "json_object" } });
  const objText = obj.choices[0].message.content;
  assert.ok(objText.startsWith("{"), objText);
  if (obj.choices[0].finish_reason === "stop") {
    const parsed = JSON.parse(objText);
    assert.ok(typeof parsed === "object" && !Array.isArray(parsed) && parsed !== null);
  }
});

test("bad constraints are 400s naming the problem", async () => {
  const bad = async (extra) => {
    try {
      await client.completions.create({ model, prompt: "a", max_tokens: 4, ...extra });
    } catch (e) {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      return e.message;
    }
    assert.fail("expected a 400");
  };
  const fmt = { type: "json_schema", json_schema: { name: "x", schema: { type: "string", format: "email" } } };
  assert.match(await bad({ response_format: fmt }), /unsupported keyword 'format'/);
  assert.match(await bad({ guided_regex: "a(?=b)" }), /lookaround/);
  assert.match(await bad({ guided_grammar: "root ::= missing" }), /'missing' is used but never defined/);
  assert.match(await bad({ guided_choice: [] }), /guided_choice/);
  assert.match(await bad({ guided_regex: "a", guided_choice: ["b"] }), /only one output constraint/);
  assert.match(await bad({ response_format: { type: "xml" } }), /json_schema/);
});
