// Shared setup: the daemon run.sh started, and a greedy reference through plain HTTP.
export const URL = process.env.TROUPE_URL;
export const KEY = process.env.TROUPE_API_KEY;
if (!URL || !KEY) throw new Error("TROUPE_URL and TROUPE_API_KEY must be set (use run.sh)");

// Waits until /health says ready (run.sh starts the daemon without waiting).
export async function waitReady(timeoutMs = 120000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      const r = await fetch(`${URL}/health`);
      if (r.status === 200) return (await r.json()).model;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("daemon not ready in time");
}

export async function completion(body) {
  const r = await fetch(`${URL}/v1/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${KEY}` },
    body: JSON.stringify(body),
  });
  if (r.status !== 200) throw new Error(`completion: HTTP ${r.status}: ${await r.text()}`);
  return r.json();
}

export async function chatCompletion(body) {
  const r = await fetch(`${URL}/v1/chat/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${KEY}` },
    body: JSON.stringify(body),
  });
  if (r.status !== 200) throw new Error(`chat completion: HTTP ${r.status}: ${await r.text()}`);
  return r.json();
}
