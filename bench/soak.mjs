#!/usr/bin/env node
// Soak test of `troupe serve` (docs/benchmarks.md "Soak"; not in CI: it runs for minutes).
//
//   node bench/soak.mjs --model DIR_OR_GGUF [--clients 512] [--minutes 10] [--warmup-minutes 2]
//        [--shutdown-timeout 10] [--bin build/app/troupe] [--out /tmp/troupe-soak]
//
// Starts the daemon, then runs --clients concurrent clients for --minutes: a third stream
// completions over SSE, a third generate over one WebSocket each, a third ask for chat
// completions (JSON). Each request, at random, is read to its end (70%), dropped part way
// (15%: the socket is closed and the client reconnects) or stalled (15%: the client stops
// reading for 1-4 s, then goes on). Checks, each a failure when it does not hold:
//   - every request that was not dropped got its terminal event (SSE [DONE], a WebSocket
//     `done` or `error`, a JSON body with choices or an OpenAI error);
//   - the daemon's RSS at the end is within 5% of its RSS at the end of the warm-up;
//   - once the clients stop, no request runs or waits and the KV cache holds 0 blocks;
//   - SIGTERM during a final burst of long streams: every stream still ends with [DONE]
//     (after an error event when the shutdown timeout cut it) and the process exits 0
//     within the shutdown timeout (plus 5 s).
// The `ws` client comes from tests/net/js (npm ci there first).
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const WebSocket = createRequire(join(here, '../tests/net/js/package.json'))('ws');

function parseArgs(argv) {
  const a = {
    bin: join(here, '../build/app/troupe'), model: '', clients: 512, minutes: 10, 'warmup-minutes': 2,
    'shutdown-timeout': 10, out: '/tmp/troupe-soak',
  };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in a)) throw new Error(`unknown option --${k}`);
    a[k] = typeof a[k] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!a.model) throw new Error('--model is required (e.g. /work/shared/models/tinystories-656k)');
  return a;
}
const opts = parseArgs(process.argv);
mkdirSync(opts.out, { recursive: true });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rand = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1));
const PROMPTS = ['Once upon a time', 'The little dog', 'Tom and Lily went to the park', 'One day, a bird'];
const behavior = () => { const r = Math.random(); return r < 0.7 ? 'normal' : r < 0.85 ? 'drop' : 'stall'; };

// ---- the daemon
async function startDaemon() {
  const log = join(opts.out, 'serve.log');
  const out = [];
  const p = spawn(opts.bin, ['serve', '--model', opts.model, '--port', '0', '--shutdown-timeout',
    String(opts['shutdown-timeout']), '--max-connections', '2048'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const onData = (d) => { out.push(d); writeFileSync(log, Buffer.concat(out)); };
  p.stdout.on('data', onData);
  p.stderr.on('data', onData);
  const exited = new Promise((r) => p.on('exit', (code, signal) => r({ code, signal, at: Date.now() })));
  for (let i = 0; i < 600; i++) {
    const m = /listening on http:\/\/[^:]+:(\d+)/.exec(Buffer.concat(out).toString());
    if (m) {
      const url = `http://127.0.0.1:${m[1]}`;
      for (let j = 0; j < 600; j++) {
        try { if ((await fetch(`${url}/health`)).status === 200) return { p, url, exited }; } catch {}
        await sleep(100);
      }
    }
    await sleep(100);
  }
  throw new Error(`troupe serve did not become ready; see ${log}`);
}
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
async function metric(url, name) {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(name + '{') || line.startsWith(name + ' ')) sum += Number(line.split(' ').pop());
  return sum;
}

// ---- the counts every check reads
const stats = { requests: 0, completed: 0, errors: 0, dropped: 0, stalled: 0, missing_terminal: 0,
  reconnects: 0, by_kind: { sse: 0, ws: 0, chat: 0 }, error_codes: {} };
const missing = (what) => { stats.missing_terminal++; if (stats.missing_terminal <= 10) console.error('no terminal event:', what); };
const errorCode = (c) => { stats.errors++; stats.error_codes[c] = (stats.error_codes[c] || 0) + 1; };

// An SSE completion; resolves once the request has ended for this client.
async function sseRequest(url, kind, maxTokens = rand(16, 96), extra = {}) {
  const ctl = new AbortController();
  const body = { prompt: PROMPTS[rand(0, 3)], max_tokens: maxTokens, stream: true, ...extra };
  let res;
  try {
    res = await fetch(`${url}/v1/completions`, { method: 'POST', signal: ctl.signal,
      headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch (e) { missing(`sse connect: ${e.message}`); return 'failed'; }
  if (res.status !== 200) { await res.text(); errorCode(res.status); return 'error'; }
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let text = '', chunks = 0;
  const dropAfter = kind === 'drop' ? rand(1, 8) : Infinity;
  const stallAt = kind === 'stall' ? rand(1, 8) : Infinity;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
      chunks++;
      if (chunks >= dropAfter) { ctl.abort(); return 'dropped'; }
      if (chunks === stallAt) await sleep(rand(1000, 4000));
    }
  } catch (e) { if (kind === 'drop') return 'dropped'; missing(`sse read: ${e.message}`); return 'failed'; }
  if (!text.includes('data: [DONE]')) { missing(`sse without [DONE]: ${text.slice(-200)}`); return 'failed'; }
  return text.includes('"error"') ? 'error' : 'ok';
}

async function chatRequest(url, kind) {
  const ctl = new AbortController();
  const body = { messages: [{ role: 'user', content: PROMPTS[rand(0, 3)] }], max_tokens: rand(16, 96) };
  if (kind === 'drop') setTimeout(() => ctl.abort(), rand(20, 300));
  try {
    const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', signal: ctl.signal,
      headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (kind === 'stall') await sleep(rand(1000, 4000));
    const j = await res.json();
    if (res.status === 200 && j.choices?.length === 1) return 'ok';
    if (j.error?.message) { errorCode(res.status); return 'error'; }
    missing(`chat reply without choices or error: ${JSON.stringify(j).slice(0, 200)}`);
    return 'failed';
  } catch (e) {
    if (kind === 'drop') return 'dropped';
    missing(`chat: ${e.message}`);
    return 'failed';
  }
}

// One WebSocket per client, reused until a request drops it.
class WsClient {
  constructor(url) { this.url = url.replace('http', 'ws') + '/v1/stream'; this.ws = null; this.waiters = new Map(); this.n = 0; }
  async open() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) return;
    if (this.ws) stats.reconnects++;
    this.ws = new WebSocket(this.url);
    this.waiters = new Map();
    const ws = this.ws;
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      const w = this.waiters.get(m.id);
      if (w && (m.type === 'done' || m.type === 'error')) { this.waiters.delete(m.id); w(m.type === 'done' ? 'ok' : `error:${m.code}`); }
      else if (w && m.type === 'token') w.tokens = (w.tokens || 0) + 1;
    });
    ws.on('close', () => { for (const w of this.waiters.values()) w('closed'); this.waiters.clear(); });
    ws.on('error', () => {});
    await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
  }
  async request(kind) {
    try { await this.open(); } catch (e) { missing(`ws connect: ${e.message}`); return 'failed'; }
    const id = `r${this.n++}`;
    const done = new Promise((r) => this.waiters.set(id, r));
    this.ws.send(JSON.stringify({ type: 'generate', id, prompt: PROMPTS[rand(0, 3)], max_tokens: rand(16, 96) }));
    if (kind === 'drop') { await sleep(rand(20, 300)); this.ws.terminate(); await done; return 'dropped'; }
    if (kind === 'stall') { this.ws._socket.pause(); await sleep(rand(1000, 4000)); this.ws._socket.resume(); }
    const r = await done;
    if (r === 'ok') return 'ok';
    if (r.startsWith('error:')) { errorCode(`ws_${r.slice(6)}`); return 'error'; }
    missing(`ws ${id}: connection closed before done/error`);
    return 'failed';
  }
}

async function client(i, url, until) {
  const mode = ['sse', 'ws', 'chat'][i % 3];
  const ws = mode === 'ws' ? new WsClient(url) : null;
  await sleep(rand(0, 3000));  // spread the start
  while (Date.now() < until) {
    const kind = behavior();
    stats.requests++;
    stats.by_kind[mode]++;
    if (kind === 'stall') stats.stalled++;
    const r = mode === 'sse' ? await sseRequest(url, kind) : mode === 'chat' ? await chatRequest(url, kind) : await ws.request(kind);
    if (r === 'ok') stats.completed++;
    else if (r === 'dropped') { stats.dropped++; stats.reconnects += mode !== 'ws'; }
  }
  if (ws?.ws) ws.ws.close();
}

// ---- the run
const t0 = Date.now();
const { p, url, exited } = await startDaemon();
console.log(`troupe serve pid ${p.pid} at ${url}; ${opts.clients} clients for ${opts.minutes} min`);
const rss = [];
const sampler = setInterval(() => { try { rss.push({ t: (Date.now() - t0) / 1000, kb: rssKb(p.pid) }); } catch {} }, 5000);
const warmupEnd = Date.now() + opts['warmup-minutes'] * 60e3;
const until = Date.now() + opts.minutes * 60e3;
let rssAtWarmup = 0;
setTimeout(() => { rssAtWarmup = rssKb(p.pid); console.log(`warm-up over: RSS ${rssAtWarmup} kB`); }, warmupEnd - Date.now());
const progress = setInterval(() => console.log(`${Math.round((Date.now() - t0) / 1000)} s: ${JSON.stringify(stats)}`), 60e3);
await Promise.all(Array.from({ length: opts.clients }, (_, i) => client(i, url, until)));
clearInterval(progress);
const rssAtEnd = rssKb(p.pid);
const rssMax = Math.max(...rss.filter((s) => s.t * 1000 + t0 >= warmupEnd).map((s) => s.kb), rssAtEnd);

// Idle: nothing runs, nothing waits, the KV cache is empty again.
let idle = null;
for (let i = 0; i < 300 && !idle; i++) {
  const running = await metric(url, 'vllm:num_requests_running');
  const waiting = await metric(url, 'vllm:num_requests_waiting');
  const kv = await metric(url, 'troupe_kv_cache_blocks_used');
  if (running === 0 && waiting === 0 && kv === 0) idle = { after_s: i / 10 };
  else await sleep(100);
}
const kvAtEnd = await metric(url, 'troupe_kv_cache_blocks_used');

// SIGTERM during a burst of long streams.
// 480 tokens each (the model's context is 512): longer than the shutdown timeout under load.
const burst = Array.from({ length: 64 }, () => sseRequest(url, 'normal', 480, { ignore_eos: true }));
await sleep(1000);
const tTerm = Date.now();
p.kill('SIGTERM');
const burstResults = await Promise.all(burst);
const exit = await exited;
clearInterval(sampler);
const exitS = (exit.at - tTerm) / 1000;

const drift = (rssAtEnd - rssAtWarmup) / rssAtWarmup;
const checks = {
  every_request_terminal: stats.missing_terminal === 0 && burstResults.every((r) => r === 'ok' || r === 'error'),
  rss_drift_under_5pct: Math.abs(drift) < 0.05,
  idle_with_kv_zero: idle !== null && kvAtEnd === 0,
  exit_within_shutdown_timeout: exit.code === 0 && exitS <= opts['shutdown-timeout'] + 5,
};
const summary = {
  clients: opts.clients, minutes: opts.minutes, model: opts.model, stats,
  requests_per_s: +(stats.requests / (opts.minutes * 60)).toFixed(1),
  rss_kb: { at_warmup_end: rssAtWarmup, at_end: rssAtEnd, max_after_warmup: rssMax, drift_pct: +(100 * drift).toFixed(2) },
  idle, kv_blocks_used_at_end: kvAtEnd,
  final_burst: { streams: burst.length, ok: burstResults.filter((r) => r === 'ok').length,
    ended_by_shutdown_error: burstResults.filter((r) => r === 'error').length },
  exit: { code: exit.code, signal: exit.signal, seconds_after_sigterm: exitS }, checks,
};
writeFileSync(join(opts.out, 'summary.json'), JSON.stringify({ ...summary, rss_samples: rss }, null, 2));
console.log(JSON.stringify(summary, null, 2));
process.exit(Object.values(checks).every(Boolean) ? 0 : 1);
