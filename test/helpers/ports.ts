import { connect, createServer } from 'node:net';

/** A TCP port that was free on 127.0.0.1 and ::1 a moment ago. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();

      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });

    if (await isFree('::1', port)) return port;
  }

  throw new Error('no free port found');
}

/** How a TCP connection to `host`:`port` ends: 'connected', or the error code (ECONNREFUSED…). */
export function dial(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, host);

    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

function isFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();

    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code !== 'EADDRINUSE'));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}
