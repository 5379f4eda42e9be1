import { createHash } from 'node:crypto';
import { Agent, request } from 'node:http';

/** A response read whole: status, headers and body. */
export interface Fetched {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

// Each request on a connection of its own, so that concurrency means concurrent streams.
const noKeepAlive = new Agent({ keepAlive: false, maxSockets: Infinity });

/** Sends one HTTP request and reads the whole answer. */
export function httpRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {},
): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: options.method ?? 'GET', headers: options.headers, agent: noKeepAlive },
      (res) => {
        const chunks: Buffer[] = [];

        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      },
    );

    req.on('error', reject);
    req.end(options.body);
  });
}

/** Downloads `url`, hashing as it goes, without keeping the body. */
export function downloadSha256(url: string): Promise<{ bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    request(url, { agent: noKeepAlive }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;

      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      res.on('end', () => resolve({ bytes, sha256: hash.digest('hex') }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

/**
 * POSTs `body` in 64 KB pieces with backpressure. `sent()` tells how much the connection has
 * taken so far, which stops growing when the far end stops reading.
 */
export function streamUpload(
  url: string,
  body: Buffer,
): { sent: () => number; response: Promise<Fetched> } {
  let sent = 0;
  const response = new Promise<Fetched>((resolve, reject) => {
    const req = request(url, { method: 'POST', agent: noKeepAlive }, (res) => {
      const chunks: Buffer[] = [];

      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    const pump = () => {
      while (sent < body.length) {
        const chunk = body.subarray(sent, sent + 64 * 1024);

        sent += chunk.length;

        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }

      req.end();
    };

    req.on('error', reject);
    pump();
  });

  return { sent: () => sent, response };
}
