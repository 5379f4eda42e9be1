// The server every path ends at, run as its own process so that it does not share the client's
// event loop. Prints {"port": N} once it listens; exits when its standard input closes, so it
// never outlives the benchmark.
//
//   GET  /small            a short text response (latency and concurrency)
//   GET  /download?bytes=N N bytes of body (download throughput)
//   POST /upload           counts the body and answers {"received": N} (upload throughput)
import http from 'node:http';

const SMALL_BODY = Buffer.from('porthole bench: small response\n');
const CHUNK = Buffer.alloc(1024 * 1024, 'x');
const MAX_DOWNLOAD_BYTES = 4 * 1024 ** 3;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://bench');

  if (req.method === 'GET' && url.pathname === '/small') {
    send(res, 200, SMALL_BODY, 'text/plain');
  } else if (req.method === 'GET' && url.pathname === '/download') {
    download(res, Number(url.searchParams.get('bytes')));
  } else if (req.method === 'POST' && url.pathname === '/upload') {
    upload(req, res);
  } else {
    send(res, 404, Buffer.from('not found\n'), 'text/plain');
  }
});

function send(res, status, body, type) {
  res.writeHead(status, { 'content-type': type, 'content-length': body.length });
  res.end(body);
}

function download(res, bytes) {
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > MAX_DOWNLOAD_BYTES) {
    send(res, 400, Buffer.from('bad bytes\n'), 'text/plain');
    return;
  }

  let left = bytes;
  // Writes until the socket pushes back, then waits for it to drain: memory stays at one chunk.
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);

      left -= n;
      if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        res.once('drain', pump);
        return;
      }
    }

    res.end();
  };

  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes });
  pump();
}

function upload(req, res) {
  let received = 0;

  req.on('data', (chunk) => {
    received += chunk.length;
  });
  req.on('end', () =>
    send(res, 200, Buffer.from(JSON.stringify({ received })), 'application/json'),
  );
}

// The client measures keep-alive latency over one connection: keep idle connections open.
server.keepAliveTimeout = 120_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});

// Exiting through process.exit lets `node --cpu-prof` write its profile.
process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
