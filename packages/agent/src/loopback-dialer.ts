import { connect, type OnReadOpts, type Socket } from 'node:net';

// Listeners inside a container bind 127.0.0.1, ::1 (Node's listen(port, 'localhost') on some
// systems) or a wildcard. Trying IPv4 first and IPv6 second reaches all of them.
const LOOPBACK_ADDRESSES = ['127.0.0.1', '::1'] as const;

/**
 * Connects to `port` on the container's loopback, and nowhere else. Resolves with the
 * connected socket, or rejects with the error of the last address tried. With `onread` the
 * socket reads into the caller's buffers (a SocketReader) instead of emitting data.
 */
export async function dialLoopback(port: number, onread?: OnReadOpts): Promise<Socket> {
  let lastError: Error = new Error('no loopback address');

  for (const host of LOOPBACK_ADDRESSES) {
    try {
      return await dialOnce(host, port, onread);
    } catch (err) {
      lastError = err as Error;
    }
  }

  throw lastError;
}

function dialOnce(host: string, port: number, onread?: OnReadOpts): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      allowHalfOpen: true,
      noDelay: true,
      ...(onread === undefined ? {} : { onread }),
    });

    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
