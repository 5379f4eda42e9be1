import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

import type { SocketReader } from './socket-reader.js';
import type { TunnelStream } from './tunnel-stream.js';

/**
 * Joins a TCP socket and a tunnel stream in both directions, half-closes included. When
 * either side fails the other is torn down; `onStreamError` may answer on the socket first
 * (the relay writes an error page when the container port refused). A socket connected with a
 * SocketReader's `onread` gives that reader, which then carries the socket's bytes instead of
 * a pipe.
 */
export function bridge(
  socket: Duplex,
  stream: TunnelStream,
  onStreamError: (err: Error) => void = () => socket.destroy(),
  reader?: SocketReader,
): void {
  if (reader === undefined) {
    socket.pipe(stream);
  } else {
    reader.attach(socket as Socket);
  }

  stream.pipe(socket);

  socket.on('error', () => stream.destroy());
  socket.on('close', () => {
    if (!stream.destroyed) {
      stream.destroy();
    }
  });
  stream.on('error', (err) => {
    if (reader === undefined) {
      socket.unpipe(stream);
    } else {
      reader.stop();
    }

    onStreamError(err);
  });
}
