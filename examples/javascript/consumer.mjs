// A leo-runtime partner in one file for Node 20+: consume a stream, verify a webhook signature.
// Nothing to install: it uses fetch and node's own modules only. Copy it and change `handle`.
//
//   LEO_URL=https://leo.example.com LEO_TOKEN=leo_... node consumer.mjs consume STREAM_ID [--max N]
//   node consumer.mjs verify notification.json ...  # {"secret", "headers", "body"}: prints valid/invalid
//   import { verifyWebhook } from "./consumer.mjs";  # in your own receiver (docs/partners.md shows one)
//
// consume: one loop per partition. Each leases its partition (so a second copy of this program
// reads the other partitions, or waits to take over), long-polls for records, hands them to
// `handle` and only then commits the checkpoint. If `handle` throws, nothing is committed and the
// same records come back; if the program dies, the next run starts after the last commit. So a
// record may come twice: apply it by `version` (skip a version you already have). Ctrl-C stops
// after the batch in hand is handled and committed.

import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const BASE = (process.env.LEO_URL ?? "http://127.0.0.1:8765").replace(/\/$/, "");
const TOKEN = process.env.LEO_TOKEN ?? "";
const LEASE_SECONDS = 30;
const WAIT_SECONDS = Number(process.env.LEO_WAIT ?? 10); // a long poll; the lease is renewed between reads

// Your work: apply the records of one partition, in order. Throwing replays them.
async function handle(partition, records) {
  for (const record of records) {
    // e.g. upsert(record.key, record.version, record.data), or delete when record.op === "deleted"
    console.log(JSON.stringify({ partition, key: record.key, version: record.version, op: record.op }));
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
  }
}

// One API call; 429 answers are waited out (Retry-After), errors become ApiError(status, detail).
async function api(method, path, { body, leaseId, signal } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Authorization: `Bearer ${TOKEN}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (leaseId) headers["Lease-Id"] = leaseId;
    const response = await fetch(BASE + path, {
      method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 429 && attempt < 5) {
      await sleep(1000 * Math.min(Number(response.headers.get("retry-after")) || 1, 60));
      continue;
    }
    if (response.status === 204) return null;
    const data = await response.json();
    if (!response.ok) throw new ApiError(response.status, data.detail ?? response.statusText);
    return data;
  }
}

async function consumePartition(streamId, partition, state) {
  const base = `/v1/streams/${encodeURIComponent(streamId)}/partitions/${partition}`;
  let leaseId = null;
  let leasedAt = 0;
  let after = null; // null: read from the committed checkpoint
  while (!state.stopping) {
    try {
      if (!leaseId || Date.now() - leasedAt > (LEASE_SECONDS * 1000) / 3) {
        const lease = await api("POST", `${base}/lease`, { body: { ttl_seconds: LEASE_SECONDS }, leaseId });
        if (lease.lease_id !== leaseId) after = null; // a new lease: start from the checkpoint
        leaseId = lease.lease_id;
        leasedAt = Date.now();
      }
      const query = new URLSearchParams({ limit: "500", wait: String(WAIT_SECONDS) });
      if (after) query.set("after", after);
      const page = await api("GET", `${base}/records?${query}`, { leaseId, signal: state.abort.signal });
      if (page.records.length > 0) {
        try {
          await handle(partition, page.records); // first the work ...
        } catch (error) {
          console.error(`partition ${partition}: handle failed, the records will come again: ${error.message}`);
          after = null;
          await sleep(1000);
          continue;
        }
        // ... then the commit (not aborted by Ctrl-C: the batch in hand is finished)
        await api("PUT", `${base}/checkpoint`, {
          body: { position: page.next_position, generation: page.generation }, leaseId,
        });
        state.handled += page.records.length;
        if (state.max && state.handled >= state.max) state.stop();
      }
      after = page.next_position;
    } catch (error) {
      if (state.stopping) break;
      if (error.status === 409) {
        // Another consumer holds the partition, our lease expired, or the stream was reset:
        // lease again and read from the checkpoint.
        leaseId = null;
        after = null;
        await sleep(2000);
      } else if (error.status === 404 || error.status === 410 || error.status === 401) {
        throw error; // the stream is gone, too old (reset it), or the token is refused
      } else {
        console.error(`partition ${partition}: ${error.message}; retrying`);
        after = null;
        await sleep(1000);
      }
    }
  }
  if (leaseId) await api("DELETE", `${base}/lease`, { leaseId }).catch(() => {});
}

async function consume(streamId, max) {
  const stream = await api("GET", `/v1/streams/${encodeURIComponent(streamId)}`);
  const state = {
    stopping: false, handled: 0, max, abort: new AbortController(),
    stop() { this.stopping = true; this.abort.abort(); },
  };
  process.on("SIGINT", () => state.stop());
  process.on("SIGTERM", () => state.stop());
  await Promise.all(stream.partitions.map((p) => consumePartition(streamId, p.partition, state)));
  console.error(`stopped after ${state.handled} record(s)`);
}

// Standard Webhooks: webhook-signature is "v1,<base64 HMAC-SHA256(key, `${id}.${timestamp}.${body}`)>",
// the key being the base64 after "whsec_" in your secret. `body` is the raw body, as received.
export function verifyWebhook(secret, headers, body, toleranceSeconds = 300) {
  const get = (name) => Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];
  const id = get("webhook-id");
  const timestamp = get("webhook-timestamp");
  const signatures = get("webhook-signature");
  if (!id || !timestamp || !signatures) return { valid: false, reason: "missing webhook headers" };
  if (!/^\d+$/.test(timestamp) || Math.abs(Date.now() / 1000 - Number(timestamp)) > toleranceSeconds) {
    return { valid: false, reason: "timestamp too old or too new" };
  }
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.`).update(body).digest();
  for (const candidate of signatures.split(" ")) {
    const [version, value] = candidate.split(",");
    const given = Buffer.from(value ?? "", "base64");
    if (version === "v1" && given.length === expected.length && timingSafeEqual(given, expected)) {
      return { valid: true, notification: JSON.parse(body) };
    }
  }
  return { valid: false, reason: "no matching signature" };
}

// The command line, when this file is run (not when another module imports verifyWebhook from it).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [command, argument, ...rest] = process.argv.slice(2);
  if (command === "consume" && argument) {
    const maxAt = rest.indexOf("--max");
    await consume(argument, maxAt >= 0 ? Number(rest[maxAt + 1]) : 0);
    process.exit(); // do not linger on idle keep-alive connections
  } else if (command === "verify" && argument) {
    for (const file of [argument, ...rest]) {
      const { secret, headers, body } = JSON.parse(readFileSync(file, "utf8"));
      const result = verifyWebhook(secret, headers, Buffer.from(body, "utf8"));
      console.log(result.valid ? `valid: ${result.notification.type}` : `invalid: ${result.reason}`);
      if (!result.valid) process.exitCode = 1;
    }
  } else {
    console.error("usage: node consumer.mjs consume STREAM_ID [--max N] | verify NOTIFICATION.json...");
    process.exitCode = 2;
  }
}
