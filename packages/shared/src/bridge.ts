import type { Duplex } from 'node:stream';

import type { TunnelStream } from './tunnel-stream.js';

/**
 * Joins a TCP socket and a tunnel stream in both directions, half-closes included. When
 * either side fails the other is torn down; `onStreamError` may answer on the socket first
 * (the relay writes an error page when the container port refused).
 */
export function bridge(
  socket: Duplex,
  stream: TunnelStream,
  onStreamError: (err: Error) => void = () => socket.destroy(),
): void {
  socket.pipe(stream);
  stream.pipe(socket);

  socket.on('error', () => stream.destroy());
  socket.on('close', () => {
    if (!stream.destroyed) {
      stream.destroy();
    }
  });
  stream.on('error', (err) => {
    socket.unpipe(stream);
    onStreamError(err);
  });
}
