// Loopback helpers: free ports, bounded polling, tiny HTTP and TCP probes.
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export const LOOPBACK = '127.0.0.1';

/**
 * A port the OS just handed out and that is free again. For programs that cannot listen on
 * port 0 and tell us which port they got (sshd, ssh -R, an agent's --map).
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();

    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const { port } = server.address();

      server.close(() => resolve(port));
    });
  });
}

/** Calls `probe` every `intervalMs` until it returns a truthy value; bounded by `timeoutMs`. */
export async function pollUntil(probe, { what, timeoutMs = 15_000, intervalMs = 10 }) {
  const deadline = performance.now() + timeoutMs;

  while (performance.now() < deadline) {
    const value = await probe();

    if (value) return value;
    await sleep(intervalMs);
  }

  throw new Error(`${what} did not happen within ${timeoutMs} ms`);
}

/** True if a TCP connection to the loopback port opens. */
export function canConnect(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: LOOPBACK, port });
    const finish = (ok) => {
      socket.destroy();
      resolve(ok);
    };

    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/** GETs a JSON document from the loopback port, or null on any failure. */
export function getJson(port, path, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const req = http.get(
      { host: LOOPBACK, port, path, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks = [];

        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString()));
          } catch {
            resolve(null);
          }
        });
        res.on('error', () => resolve(null));
      },
    );

    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}
