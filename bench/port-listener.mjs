// Opens and closes TCP listeners on command, for the port watcher measurement: run where the
// agent's watcher looks (inside its namespace). Reads lines `listen PORT` and `close PORT` on
// standard input; answers {"listening":PORT,"at":T} once listen() has completed, T being the
// wall clock in ms with sub-millisecond precision, and {"closed":PORT}. Binds 127.0.0.1 only.
// Exits when its standard input closes.
import net from 'node:net';
import { createInterface } from 'node:readline';

const servers = new Map();

function answer(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, text] = line.trim().split(' ');
  const port = Number(text);

  if (command === 'listen') {
    const server = net.createServer((socket) => socket.destroy());

    server.on('error', (err) => answer({ error: err.message, port }));
    server.listen(port, '127.0.0.1', () => {
      answer({ listening: port, at: performance.timeOrigin + performance.now() });
    });
    servers.set(port, server);
  } else if (command === 'close') {
    servers.get(port)?.close(() => answer({ closed: port }));
    servers.delete(port);
  }
});

process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
