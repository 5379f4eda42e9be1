// One hop of the "two plain hops" path: a minimal TCP proxy, node:net sockets piped both ways
// and nothing else. Usage: node tcp-proxy.mjs TARGET_PORT. Prints {"port": N} once it listens
// on 127.0.0.1; exits when its standard input closes, so it never outlives the benchmark.
import net from 'node:net';

const target = Number(process.argv[2]);

if (!Number.isInteger(target) || target < 1 || target > 65535) {
  process.stderr.write('usage: node tcp-proxy.mjs TARGET_PORT\n');
  process.exit(2);
}

// noDelay as any proxy that carries request/response traffic (porthole's mirror and dialer do
// the same); allowHalfOpen so that a half close travels through like it does in a tunnel.
const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (client) => {
  const upstream = net.connect({
    host: '127.0.0.1',
    port: target,
    noDelay: true,
    allowHalfOpen: true,
  });
  const close = () => {
    client.destroy();
    upstream.destroy();
  };

  client.on('error', close);
  upstream.on('error', close);
  client.pipe(upstream);
  upstream.pipe(client);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});

// Exiting through process.exit lets `node --cpu-prof` write its profile.
process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
