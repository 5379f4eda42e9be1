import { connect, createServer, type Server } from 'node:net';

import { HANDOFF_REPLY_TIMEOUT_MS, MAX_URL_LENGTH } from '@porthole/shared';

/**
 * Where `porthole-agent open` finds the running agent. An abstract Unix socket (the leading NUL)
 * belongs to a network namespace, not to the filesystem: each container reaches its own agent
 * even when containers share a filesystem, and nothing is left behind on disk.
 */
export const HANDOFF_SOCKET = '\0porthole-agent-open';

/** Receives URLs from `porthole-agent open` and hands them to `onUrl`. */
export class BrowserHandoff {
  readonly #server: Server;

  constructor(onUrl: (url: string) => void) {
    this.#server = createServer((socket) => {
      let line = '';

      socket.setEncoding('utf8');
      socket.setTimeout(HANDOFF_REPLY_TIMEOUT_MS, () => socket.destroy());
      socket.on('error', () => undefined);
      socket.on('data', (chunk: string) => {
        line += chunk;

        if (line.length > MAX_URL_LENGTH + 1) {
          socket.destroy();
          return;
        }

        const end = line.indexOf('\n');

        if (end !== -1) {
          onUrl(line.slice(0, end));
          socket.end('ok\n');
        }
      });
    });
  }

  /** Starts listening; false when another agent in this namespace already does. */
  listen(path = HANDOFF_SOCKET): Promise<boolean> {
    return new Promise((resolve) => {
      this.#server.once('error', () => resolve(false));
      this.#server.listen(path, () => resolve(true));
    });
  }

  close(): void {
    this.#server.close();
  }
}

/** Hands a URL to the running agent; false when none answered. */
export function handOff(url: string, path = HANDOFF_SOCKET): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    let reply = '';

    socket.setEncoding('utf8');
    socket.setTimeout(HANDOFF_REPLY_TIMEOUT_MS, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('connect', () => socket.write(`${url}\n`));
    socket.on('data', (chunk: string) => (reply += chunk));
    socket.on('end', () => resolve(reply.startsWith('ok')));
    socket.on('error', () => resolve(false));
  });
}
