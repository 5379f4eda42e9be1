import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { WebSocketServer } from 'ws';

/** What the test server inside the "container" has seen, for assertions. */
export interface ContainerServer {
  server: Server;
  port: number;
  /** The bytes `GET /download` serves. */
  download: Buffer;
  downloadSha256: string;
  /** Request lines received, in order. */
  requests: string[];
  /** Bytes of the latest `/download` answer that the connection has taken so far. */
  downloadSent(): number;
  /** Lets a held `/upload?hold` body in. */
  releaseUpload(): void;
  close(): Promise<void>;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * An HTTP server standing in for a tool's listener inside a container: small answers, a large
 * download, an upload that it hashes, a form echo, server-sent events and a WebSocket echo.
 */
export async function startContainerServer(
  options: { host?: string; port?: number; downloadBytes?: number } = {},
): Promise<ContainerServer> {
  const download = randomBytes(options.downloadBytes ?? 1024 * 1024);
  const requests: string[] = [];
  let releaseEvent: (() => void) | undefined;
  let downloadSent = 0;
  let releaseUpload = () => undefined as void;

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
    '/hello': (_req, res) => res.end('hello from the container'),
    // Written in 64 KB pieces with backpressure, as a real server would, so that the bytes
    // taken by the connection can be counted while a slow reader holds the rest back.
    '/download': (_req, res) => {
      let offset = 0;
      const pump = () => {
        while (offset < download.length) {
          const chunk = download.subarray(offset, offset + 64 * 1024);

          offset += chunk.length;
          downloadSent = offset;

          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }

        res.end();
      };

      downloadSent = 0;
      res.setHeader('content-length', download.length);
      pump();
    },
    '/upload': (req, res) => {
      const hash = createHash('sha256');
      let bytes = 0;

      // With ?hold the server reads nothing until released, like a busy or stuck listener.
      if (req.url?.endsWith('?hold') === true) {
        req.pause();
        releaseUpload = () => req.resume();
      }

      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      req.on('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') })));
    },
    '/form': (req, res) => {
      const chunks: Buffer[] = [];

      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            contentType: req.headers['content-type'],
            body: Buffer.concat(chunks).toString(),
          }),
        );
      });
    },
    '/events': (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write('data: first\n\n');
      releaseEvent = () => {
        res.end('data: second\n\n');
      };
    },
    '/events/next': (_req, res) => {
      releaseEvent?.();
      res.end('ok');
    },
    '/redirect': (_req, res) => {
      res.writeHead(302, { location: '/hello' });
      res.end();
    },
  };

  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);

    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const route = routes[path];

    if (route === undefined) {
      res.statusCode = 404;
      res.end('not found');
      return;
    }

    route(req, res);
  });
  const wss = new WebSocketServer({ server });

  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });

  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve),
  );

  return {
    server,
    port: (server.address() as AddressInfo).port,
    download,
    downloadSha256: sha256(download),
    requests,
    downloadSent: () => downloadSent,
    releaseUpload: () => releaseUpload(),
    close: () =>
      new Promise((resolve) => {
        wss.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
