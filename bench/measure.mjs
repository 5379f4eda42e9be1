// What the client measures on a path: the same node:http client code for every path, run in
// the benchmark's own process. Every request has a time limit; a request that fails or times
// out is counted, never retried.
import { readFileSync } from 'node:fs';
import http from 'node:http';

import { LOOPBACK } from './net.mjs';
import { percentile } from './stats.mjs';

export const MIB = 1024 * 1024;
const UPLOAD_CHUNK = Buffer.alloc(MIB, 'y');
const WARMUP_REQUESTS = 20;

/**
 * `count` small GETs one after the other over one keep-alive connection. Returns p50 and p99 in
 * ms, each request's time, and how many connections the measured requests opened (0 when
 * keep-alive held). `sample(i)` is called before the first measured request (i = 0) and after
 * each (i = 1 … count), outside the timed part; what it returns is in `samples`.
 */
export async function sequentialLatency(port, count, timeoutMs, sample = () => null) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const times = [];
  const samples = [];
  let connections = 0;

  try {
    for (let i = 0; i < WARMUP_REQUESTS; i += 1) await request(agent, port, '/small', timeoutMs);

    samples.push(sample(0));
    for (let i = 0; i < count; i += 1) {
      const started = process.hrtime.bigint();
      const { reused } = await request(agent, port, '/small', timeoutMs);

      times.push(Number(process.hrtime.bigint() - started) / 1e6);
      samples.push(sample(i + 1));
      if (!reused) connections += 1;
    }
  } finally {
    agent.destroy();
  }

  return { p50: percentile(times, 50), p99: percentile(times, 99), connections, times, samples };
}

/** One GET on a connection of its own; returns its time in ms, from request to last byte. */
export async function timedGet(port, path, timeoutMs) {
  const started = process.hrtime.bigint();

  await request(false, port, path, timeoutMs);

  return { ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

/** Downloads `bytes` and returns MiB/s from request to last byte, and whether all bytes came. */
export async function download(port, bytes, timeoutMs) {
  const started = process.hrtime.bigint();
  const { received } = await request(false, port, `/download?bytes=${bytes}`, timeoutMs);

  return { mibPerSecond: rate(received, started), complete: received === bytes, received };
}

/** Uploads `bytes` and returns MiB/s from request to the server's count, and whether it matched. */
export async function upload(port, bytes, timeoutMs) {
  const started = process.hrtime.bigint();
  const { body } = await request(false, port, '/upload', timeoutMs, bytes);
  const received = JSON.parse(body).received;

  return { mibPerSecond: rate(bytes, started), complete: received === bytes, received };
}

/**
 * `count` small GETs started at once, each on its own connection. Returns the wall time until the
 * last one settled and how many failed.
 */
export async function concurrent(port, count, timeoutMs) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: count + 1 });
  const overflowsBefore = listenOverflows();
  const started = process.hrtime.bigint();
  let failed = [];

  try {
    const outcomes = await Promise.allSettled(
      Array.from({ length: count }, () => request(agent, port, '/small', timeoutMs)),
    );

    failed = outcomes.filter((o) => o.status === 'rejected');
  } finally {
    agent.destroy();
  }

  return {
    wallMs: Number(process.hrtime.bigint() - started) / 1e6,
    errors: failed.length,
    firstError: failed[0]?.reason?.message,
    overflows: listenOverflows() - overflowsBefore,
  };
}

/**
 * Connections the kernel dropped because a listener's accept queue was full (Linux, this network
 * namespace; NaN elsewhere). The client's SYN is then retried after about a second, which shows
 * up in the wall time of a burst of connections.
 */
function listenOverflows() {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    const names = lines.find((l) => l.startsWith('TcpExt:'))?.split(' ');
    const values = lines.filter((l) => l.startsWith('TcpExt:'))[1]?.split(' ');
    const at = names?.indexOf('ListenOverflows') ?? -1;

    return at > 0 ? Number(values[at]) : NaN;
  } catch {
    return NaN;
  }
}

function rate(bytes, started) {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;

  return bytes / MIB / seconds;
}

/**
 * One request. A POST sends `uploadBytes` of body. The body is kept only when it is small; its
 * size is always counted. Rejects on error, on a status other than 200 and after `timeoutMs`.
 */
function request(agent, port, path, timeoutMs, uploadBytes) {
  return new Promise((resolve, reject) => {
    const method = uploadBytes === undefined ? 'GET' : 'POST';
    const headers = method === 'POST' ? { 'content-length': uploadBytes } : {};
    const req = http.request({ host: LOOPBACK, port, path, method, headers, agent });
    const timer = setTimeout(
      () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const fail = (err) => {
      clearTimeout(timer);
      reject(err);
    };

    req.on('error', fail);
    req.on('response', (res) => {
      const chunks = [];
      let received = 0;

      res.on('data', (chunk) => {
        received += chunk.length;
        if (received <= 64 * 1024) chunks.push(chunk);
      });
      res.on('error', fail);
      res.on('end', () => {
        clearTimeout(timer);
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode} from ${path}`));
        else
          resolve({ received, body: Buffer.concat(chunks).toString(), reused: req.reusedSocket });
      });
    });

    if (method === 'POST') writeBody(req, uploadBytes).catch(fail);
    else req.end();
  });
}

// Writes `bytes` of body, waiting for the socket whenever it pushes back.
async function writeBody(req, bytes) {
  let left = bytes;

  while (left > 0) {
    const n = Math.min(left, UPLOAD_CHUNK.length);

    left -= n;
    if (!req.write(n === UPLOAD_CHUNK.length ? UPLOAD_CHUNK : UPLOAD_CHUNK.subarray(0, n))) {
      await drained(req);
    }
  }

  req.end();
}

function drained(req) {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      req.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      req.off('drain', onDrain);
      reject(new Error('connection closed during upload'));
    };

    req.once('drain', onDrain);
    req.once('close', onClose);
  });
}
