// GET /v1/stream with the standard `ws` client: two requests multiplexed on one
// connection, one of them cancelled; protocol errors; ping/pong keepalive.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import WebSocket from "ws";
import { KEY, URL, completion, waitReady } from "./helpers.mjs";

const WS_URL = URL.replace(/^http/, "ws") + "/v1/stream";

before(async () => {
  await waitReady();
});

function open(headers = { Authorization: `Bearer ${KEY}` }) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(WS_URL, { headers });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
    // With this listener installed, ws leaves the refused request to us: destroy it, or the
    // socket idles until the server's keep-alive timeout.
    ws.once("unexpected-response", (req, res) => {
      req.destroy();
      reject(Object.assign(new Error("HTTP " + res.statusCode), { status: res.statusCode }));
    });
  });
}

// Collects parsed messages; `until` resolves when a predicate over all messages holds.
function collector(ws) {
  const msgs = [];
  const waiters = [];
  ws.on("message", (data) => {
    msgs.push(JSON.parse(data.toString()));
    for (const w of [...waiters]) {
      if (!w.pred(msgs)) continue;
      waiters.splice(waiters.indexOf(w), 1);
      clearTimeout(w.timer);  // a pending timer would keep the test process alive
      w.resolve(msgs);
    }
  });
  return {
    msgs,
    until(pred, ms = 30000) {
      if (pred(msgs)) return Promise.resolve(msgs);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        w.timer = setTimeout(() => reject(new Error("timeout; got " + JSON.stringify(msgs.slice(-5)))), ms);
        waiters.push(w);
      });
    },
  };
}

const finished = (id) => (msgs) => msgs.some((m) => m.id === id && (m.type === "done" || m.type === "error"));

test("two multiplexed requests, one cancelled mid-stream", async () => {
  // On a loaded machine the 400 tokens can all be out before the cancel is read; then the
  // run proves nothing about cancelling and is tried again.
  for (let attempt = 0; ; ++attempt) {
    const cancelled = await cancelMidStream();
    if (cancelled || attempt === 4) {
      assert.ok(cancelled, "the cancel arrived mid-stream in one of 5 tries");
      break;
    }
  }
});

async function cancelMidStream() {
  const ws = await open();
  const c = collector(ws);
  const prompt = "Once upon a time";
  ws.send(JSON.stringify({ type: "generate", id: "long", prompt, max_tokens: 400, temperature: 0, ignore_eos: true }));
  ws.send(JSON.stringify({ type: "generate", id: 2, prompt, max_tokens: 40, temperature: 0, ignore_eos: true }));
  // Cancel "long" once request 2 is done and "long" has streamed a few tokens: both then ran
  // side by side. (Request 2 joins a step or two after "long", and speculation can bring
  // "long" several tokens ahead, so a fixed count of "long" tokens could come before request
  // 2 produced any.)
  await c.until((msgs) => finished(2)(msgs) && msgs.filter((m) => m.id === "long" && m.type === "token").length >= 3);
  ws.send(JSON.stringify({ type: "cancel", id: "long" }));
  await c.until((msgs) => finished("long")(msgs) && finished(2)(msgs));
  ws.close();

  const doneLong = c.msgs.find((m) => m.id === "long" && m.type === "done");
  const doneTwo = c.msgs.find((m) => m.id === 2 && m.type === "done");
  if (doneLong.finish_reason === "length") return false;
  assert.equal(doneLong.finish_reason, "cancelled");
  assert.ok(doneLong.usage.completion_tokens < 400, "cancelled before the end");
  assert.equal(doneTwo.finish_reason, "length");
  assert.equal(doneTwo.usage.completion_tokens, 40);
  for (const k of ["queue_ms", "ttft_ms", "e2e_ms", "tpot_ms"]) assert.equal(typeof doneTwo.timings[k], "number");

  // Both streams really were interleaved on the one connection.
  const ids = c.msgs.filter((m) => m.type === "token").map((m) => m.id);
  const firstTwo = ids.indexOf(2);
  assert.ok(firstTwo >= 0 && ids.slice(firstTwo).includes("long"), "tokens of the two requests interleave");

  // The uncancelled stream is exactly what plain HTTP produces for the same greedy request.
  const text = c.msgs.filter((m) => m.id === 2 && m.type === "token").map((m) => m.text).join("");
  const ref = await completion({ prompt, max_tokens: 40, temperature: 0, ignore_eos: true });
  assert.equal(text, ref.choices[0].text);
  return true;
}

test("chat messages and token ids over the socket", async () => {
  const ws = await open();
  const c = collector(ws);
  ws.send(JSON.stringify({ type: "generate", id: "chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 5 }));
  await c.until(finished("chat"));
  const toks = c.msgs.filter((m) => m.id === "chat" && m.type === "token");
  assert.ok(toks.length > 0);
  for (const t of toks) assert.ok(Array.isArray(t.token_ids));
  // Each generate message gets an access-log line in the daemon's log (run.sh's out/serve.log).
  const done = c.msgs.find((m) => m.id === "chat" && m.type === "done");
  const log = readFileSync("out/serve.log", "utf8");
  assert.match(log, new RegExp(`access id=ws:chat route="WS generate" status=200 prompt_tokens=${done.usage.prompt_tokens} ` +
                               `output_tokens=${done.usage.completion_tokens} ttft_ms=[0-9.]+ e2e_ms=[0-9.]+ finish=${done.finish_reason}`));
  ws.close();
});

test("protocol errors are reported per message and the connection keeps working", async () => {
  const ws = await open();
  const c = collector(ws);
  ws.send("{not json");
  ws.send(JSON.stringify({ type: "generate", prompt: "x" }));                         // no id
  ws.send(JSON.stringify({ type: "generate", id: "t", prompt: "x", temperature: -1 }));
  ws.send(JSON.stringify({ type: "generate", id: "u", prompt: "x", bogus: 1 }));
  ws.send(JSON.stringify({ type: "cancel", id: "nobody" }));
  ws.send(JSON.stringify({ type: "launch" }));
  await c.until((msgs) => msgs.filter((m) => m.type === "error").length >= 6);
  const errs = c.msgs.filter((m) => m.type === "error");
  assert.deepEqual(errs.map((e) => e.code), [400, 400, 400, 400, 404, 400]);
  assert.equal(errs[0].id, null);
  assert.equal(errs[2].id, "t");
  assert.match(errs[2].message, /temperature/);

  // A second generate with the id of one still running is refused. (On a loaded machine the
  // first may finish before the second is read; then both are fine and we try again.)
  let refused = null;
  for (let attempt = 0; attempt < 5 && !refused; ++attempt) {
    const id = `dup${attempt}`;
    ws.send(JSON.stringify({ type: "generate", id, prompt: "Once", max_tokens: 300, ignore_eos: true }));
    ws.send(JSON.stringify({ type: "generate", id, prompt: "Once", max_tokens: 3 }));
    await c.until((msgs) => msgs.some((m) => m.id === id && m.type === "error") ||
                            msgs.filter((m) => m.id === id && m.type === "done").length === 2);
    refused = c.msgs.find((m) => m.id === id && m.type === "error");
    if (refused) {
      ws.send(JSON.stringify({ type: "cancel", id }));
      await c.until((msgs) => msgs.some((m) => m.id === id && m.type === "done"));
    }
  }
  assert.ok(refused, "a duplicate id was refused");
  assert.equal(refused.code, 409);
  ws.close();
});

test("ping/pong: WebSocket control frames and the JSON ping", async () => {
  const ws = await open();
  const payload = Buffer.from("keepalive-42");
  const pong = new Promise((resolve) => ws.once("pong", resolve));
  ws.ping(payload);
  assert.deepEqual(await pong, payload);
  const c = collector(ws);
  ws.send(JSON.stringify({ type: "ping", id: 9 }));
  await c.until((msgs) => msgs.some((m) => m.type === "pong"));
  assert.deepEqual(c.msgs.find((m) => m.type === "pong"), { type: "pong", id: 9 });
  // The server pings an idle connection (run.sh starts it with --ws-ping-interval 1); ws
  // answers with a pong by itself, which keeps the connection open.
  const t0 = Date.now();
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no ping from the server")), 5000);
    ws.once("ping", () => { clearTimeout(timer); resolve(); });
  });
  assert.ok(Date.now() - t0 < 5000);
  await new Promise((r) => setTimeout(r, 2500));  // past the idle timeout: still open thanks to the pongs
  assert.equal(ws.readyState, WebSocket.OPEN);
  ws.close();
});

test("the handshake needs the API key", async () => {
  await assert.rejects(open({}), (e) => e.status === 401);
  await assert.rejects(open({ Authorization: "Bearer wrong" }), (e) => e.status === 401);
  const ws = await new Promise((resolve, reject) => {
    const s = new WebSocket(`${WS_URL}?api_key=${KEY}`);
    s.once("open", () => resolve(s));
    s.once("error", reject);
  });
  ws.close();
});

// A Prometheus sample's value from /metrics.
async function metric(series) {
  const text = await (await fetch(`${URL}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

test("closing the socket cancels its requests in flight", async () => {
  const model = await waitReady();
  const series = `troupe_requests_aborted_total{model_name="${model}",cause="client_disconnect"}`;
  const before = await metric(series);
  const ws = await open();
  const c = collector(ws);
  ws.send(JSON.stringify({ type: "generate", id: 1, prompt: "Once upon a time", max_tokens: 450, ignore_eos: true }));
  ws.send(JSON.stringify({ type: "generate", id: 2, prompt: "The dog", max_tokens: 450, ignore_eos: true }));
  await c.until((msgs) => msgs.filter((m) => m.type === "token").length >= 4);
  ws.terminate();  // no close handshake: the TCP connection just goes away
  let after = before;
  for (let i = 0; i < 100 && after < before + 2; i++) {
    await new Promise((r) => setTimeout(r, 50));
    after = await metric(series);
  }
  assert.equal(after, before + 2);
  assert.equal(await metric(`vllm_num_requests_running{model_name="${model}"}`), 0);
});

test("a message over the size limit closes that connection, and only that one", async () => {
  const other = await open();
  const ws = await open();
  ws.on("error", () => {});
  const closed = new Promise((resolve) => ws.once("close", (code) => resolve(code)));
  ws.send(JSON.stringify({ type: "generate", id: 1, prompt: "x".repeat(2 << 20) }));
  // 1009 (message too big) normally; 1006 when the server's close frame loses the race
  // with the client still writing the rest of the oversized frame.
  assert.ok([1009, 1006].includes(await closed));
  const c = collector(other);
  other.send(JSON.stringify({ type: "generate", id: "still", prompt: "Once", max_tokens: 3 }));
  await c.until(finished("still"));
  other.close();
});

// run.sh serves with n-gram speculation, so done events carry spec_decode usage and
// /metrics vLLM's spec_decode counters. A repetitive prompt gives the lookup something to
// propose; greedy output is the same as without speculation (tests/spec checks that).
test("done events report speculative decoding usage; /metrics counts it", async () => {
  const ws = await open();
  const c = collector(ws);
  const prompt = "Tom said: I like the red ball. Tom said: I like the red ball. Tom said: I like the red ball.";
  ws.send(JSON.stringify({ type: "generate", id: "s", prompt, max_tokens: 64, temperature: 0, ignore_eos: true }));
  await c.until(finished("s"));
  const done = c.msgs.find((m) => m.id === "s" && m.type === "done");
  assert.ok(done, JSON.stringify(c.msgs.slice(-2)));
  const sd = done.usage.spec_decode;
  assert.ok(sd, "usage.spec_decode missing: " + JSON.stringify(done.usage));
  for (const k of ["num_drafts", "num_draft_tokens", "num_accepted_tokens", "mean_accepted_length"])
    assert.equal(typeof sd[k], "number", k);
  assert.ok(sd.num_accepted_tokens <= sd.num_draft_tokens);
  assert.ok(sd.num_drafts <= sd.num_draft_tokens);
  if (sd.num_drafts > 0) assert.ok(Math.abs(sd.mean_accepted_length - (1 + sd.num_accepted_tokens / sd.num_drafts)) < 1e-9);
  ws.close();
  const metrics = await (await fetch(`${URL}/metrics`)).text();
  // vLLM's names with the colon written as "_" (promtool reserves colons for recording rules).
  for (const name of ["vllm_spec_decode_num_draft_tokens_total", "vllm_spec_decode_num_accepted_tokens_total",
                      "vllm_spec_decode_num_drafts_total"])
    assert.match(metrics, new RegExp("^" + name + "(\\{[^}]*\\})? ", "m"), name);
});

test("a request with its own latency target gets its attainment in done", async () => {
  // The daemon has no server-wide targets, only a TPOT floor (run.sh: --slo-min-tpot-ms 1),
  // so a request may set a TPOT target and has no TTFT target.
  const ws = await open();
  const c = collector(ws);
  ws.send(JSON.stringify({ type: "generate", id: "t", prompt: "Once upon a time", max_tokens: 8, ignore_eos: true,
                           temperature: 0, slo: { tpot_ms: 60000 } }));
  ws.send(JSON.stringify({ type: "generate", id: "u", prompt: "Once upon a time", max_tokens: 4, temperature: 0 }));
  await c.until((msgs) => finished("t")(msgs) && finished("u")(msgs));
  const done = c.msgs.find((m) => m.id === "t" && m.type === "done");
  assert.ok(done, JSON.stringify(c.msgs.slice(-2)));
  assert.deepEqual(Object.keys(done.slo).sort(), ["met", "tpot_ms", "tpot_target_ms", "ttft_ms", "ttft_target_ms"]);
  assert.equal(done.slo.met, true);
  assert.equal(done.slo.tpot_target_ms, 60000);
  assert.equal(done.slo.ttft_target_ms, null);
  assert.ok(done.slo.ttft_ms > 0 && done.slo.tpot_ms > 0, JSON.stringify(done.slo));
  const plain = c.msgs.find((m) => m.id === "u" && m.type === "done");
  assert.equal(plain.slo, undefined);  // no targets, nothing to report
  // A target under the floor is refused for that request only.
  ws.send(JSON.stringify({ type: "generate", id: "v", prompt: "Hi", max_tokens: 2, slo: { tpot_ms: 0.5 } }));
  await c.until(finished("v"));
  const err = c.msgs.find((m) => m.id === "v" && m.type === "error");
  assert.ok(err && /at least 1 ms/.test(JSON.stringify(err)), JSON.stringify(c.msgs.slice(-2)));
  ws.close();
});
