import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { Namespace } from '../helpers/netns.js';
import { freePort } from '../helpers/ports.js';
import { AGENT_CLI, type Program } from '../helpers/processes.js';
import { portsOf } from '../helpers/relay-api.js';
import { mintToken, type RelayProcess, startRelayProcess, tempDir } from '../helpers/relay.js';

const SIGNAL_EXIT = fileURLToPath(new URL('../fixtures/signal-exit.mjs', import.meta.url));
// Exits 4 on SIGINT, and says when it is ready for it.
const SIGINT_EXIT =
  "process.on('SIGINT', () => process.exit(4)); setInterval(() => undefined, 1000); " +
  "console.log('running');";
// Writes each argument to the running agent's hand-off socket as any program in the container
// could, without going through `porthole-agent open`.
const HAND_OFF_RAW =
  "const net = require('node:net'); (async () => { for (const url of process.argv.slice(1)) {" +
  "  await new Promise((done) => { const s = net.connect('\\0porthole-agent-open');" +
  "    s.on('connect', () => s.write(url + '\\n')); s.on('data', () => s.end()); s.on('close', done);" +
  '  }); } })();';
const NOT_A_WEB_PAGE = /asked to open something that is not a web page/;

describe('porthole-agent run and open in a namespace', () => {
  let ns: Namespace;
  let relay: RelayProcess;
  let token: string;
  let relayUrl: string;

  beforeAll(async () => {
    ns = Namespace.create();
    relay = await startRelayProcess({ args: ['--host', ns.hostAddress, '--no-open'] });
    token = await mintToken(relay.keyFile, 'wrapped');
    relayUrl = `ws://${ns.hostAddress}:${relay.port}`;
  });

  // The agents share the namespace's hand-off socket: one left running would take the next
  // test's pages.
  let running: Program[] = [];

  afterEach(async () => {
    await Promise.all(running.map((program) => program.stop()));
    running = [];
  });

  afterAll(async () => {
    await relay?.program.stop();
    ns?.destroy();
  });

  function run(command: string[]): Program {
    const program = ns.spawn(
      process.execPath,
      [AGENT_CLI, 'run', '--relay', relayUrl, '--', ...command],
      { PORTHOLE_TOKEN: token },
    );

    running.push(program);
    return program;
  }

  it("exits with the wrapped command's status", async () => {
    const wrapped = run(['sh', '-c', 'exit 7']);

    expect(await wrapped.exited).toBe(7);
  });

  it('gives the wrapped command BROWSER and the browser names first on PATH', async () => {
    const wrapped = run([
      'sh',
      '-c',
      'echo "browser=$BROWSER"; for n in xdg-open sensible-browser www-browser x-www-browser; do command -v $n; done',
    ]);

    expect(await wrapped.exited).toBe(0);

    const browser = /browser=(\S+)/.exec(wrapped.output)?.[1] ?? '';
    const dir = browser.slice(0, browser.lastIndexOf('/'));

    expect(browser).toMatch(/porthole-browser$/);
    for (const name of ['xdg-open', 'sensible-browser', 'www-browser', 'x-www-browser']) {
      expect(wrapped.output).toContain(`${dir}/${name}`);
    }
  });

  it('passes SIGTERM to the wrapped command and returns the status it exits with', async () => {
    const wrapped = run([process.execPath, SIGNAL_EXIT]);

    await wrapped.waitForLine(/^running$/);
    await wrapped.waitForLine(/connected to the relay/);
    wrapped.child.kill('SIGTERM');

    expect(await wrapped.exited, wrapped.output).toBe(3);
  });

  it("mirrors a login's callback port before anything listens on it", async () => {
    const port = await freePort();
    const state = `s${Date.now()}`;
    const page = `https://login.example/authorize?client_id=c&state=${state}&redirect_uri=${encodeURIComponent(`http://localhost:${port}/callback`)}`;
    // The shell opens the page the way xdg-open would, then waits for the test to look.
    const wrapped = run(['sh', '-c', `xdg-open '${page}' && echo opened && exec sleep 30`]);

    await wrapped.waitForLine(/^opened$/);
    await relay.program.waitForLine((line) => line.includes(`Open this page to continue: ${page}`));

    expect(await portsOf(relay.url, 'wrapped')).toContainEqual(
      expect.objectContaining({ hostPort: port, status: 'mirrored', sources: ['login'] }),
    );
    wrapped.child.kill('SIGTERM');
    await wrapped.exited;
  });

  it('exits 127 saying "command not found" for a command that does not exist', async () => {
    const wrapped = run(['porthole-no-such-command']);

    expect(await wrapped.exited).toBe(127);
    expect(wrapped.output).toContain('porthole-agent: porthole-no-such-command: command not found');
    expect(wrapped.output).not.toMatch(/unexpected error|ENOENT|\n\s+at /);
  });

  it('exits 126 saying "permission denied" for a file that is not executable', async () => {
    const file = join(tempDir(), 'not-executable');

    writeFileSync(file, '#!/bin/sh\nexit 0\n', { mode: 0o644 });

    const wrapped = run([file]);

    expect(await wrapped.exited).toBe(126);
    expect(wrapped.output).toContain(`porthole-agent: ${file}: permission denied`);
    expect(wrapped.output).not.toMatch(/unexpected error|EACCES|\n\s+at /);
  });

  it('passes SIGINT to the wrapped command and returns the status it exits with', async () => {
    const wrapped = run([process.execPath, '-e', SIGINT_EXIT]);

    await wrapped.waitForLine(/^running$/);
    await wrapped.waitForLine(/connected to the relay/);
    wrapped.child.kill('SIGINT');

    expect(await wrapped.exited, wrapped.output).toBe(4);
  });

  it('delivers a Ctrl-C typed on a terminal to the wrapped command once, not twice', async () => {
    // The terminal signals its whole foreground group, agent and command alike. `script` gives
    // the agent a terminal of its own; the command counts what reaches it for a moment. `exec`
    // keeps script's shell out of that group: dash waits rather than exec a lone command, and
    // exits 130 on the Ctrl-C whatever its child does.
    const counter = join(tempDir(), 'count-sigint.cjs');

    writeFileSync(
      counter,
      "let n = 0; process.on('SIGINT', () => { n += 1; if (n === 1) setTimeout(() => " +
        "{ console.log('sigints=' + n); process.exit(0); }, 1000); }); console.log('counting SIGINT'); " +
        'setInterval(() => undefined, 1000);',
    );

    const agentRun = [process.execPath, AGENT_CLI, 'run', '--no-watch', '--', process.execPath];
    const terminal = spawn(
      'script',
      ['-qfec', ['exec', ...agentRun, counter].join(' '), '/dev/null'],
      {
        env: { ...process.env, SHELL: '/bin/sh', PORTHOLE_RELAY: relayUrl, PORTHOLE_TOKEN: token },
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    let output = '';
    const exited = new Promise((resolve) => terminal.once('close', resolve));

    terminal.stdout.setEncoding('utf8');
    await new Promise<void>((resolve) => {
      terminal.stdout.on('data', (chunk: string) => {
        output += chunk;
        if (/^counting SIGINT\r?$/m.test(output)) resolve();
      });
    });
    terminal.stdin.write('\x03');

    expect(await exited).toBe(0);
    expect(output).toMatch(/sigints=1\b/);
  });

  it('keeps the relay token from the wrapped command, whose browser stand-ins still reach the relay', async () => {
    const page = `https://login.example/authorize?client_id=c&state=t${Date.now()}`;
    const wrapped = run([
      'sh',
      '-c',
      `echo "token=\${PORTHOLE_TOKEN-unset}"; env; xdg-open '${page}' && echo opened && exec sleep 30`,
    ]);

    await wrapped.waitForLine(/^opened$/);
    await relay.program.waitForLine((line) => line.includes(`Open this page to continue: ${page}`));

    expect(wrapped.output).toContain('token=unset');
    expect(wrapped.output).not.toContain(token);
  });

  it("lets a command run as another user open pages, but not read the agent's environment", async () => {
    const page = `https://login.example/authorize?client_id=c&state=u${Date.now()}`;
    const wrapped = run([
      'runuser',
      '-u',
      'nobody',
      '--',
      'sh',
      '-c',
      // runuser waits for its command: the agent is the parent of the shell's parent.
      `agent=$(cut -d' ' -f4 /proc/$PPID/stat); tr '\\0' ' ' < /proc/$agent/cmdline; echo; ` +
        `tr '\\0' '\\n' < /proc/$agent/environ; xdg-open '${page}' && echo opened && exec sleep 30`,
    ]);

    await wrapped.waitForLine(/^opened$/);
    await relay.program.waitForLine((line) => line.includes(`Open this page to continue: ${page}`));

    expect(wrapped.output).toContain(`${AGENT_CLI} run --relay`);
    expect(wrapped.output).toMatch(/environ: Permission denied/);
    expect(wrapped.output).not.toContain(token);
  });

  it.each([
    ['xdg-open with a word after the URL', (page: string) => `xdg-open '${page}' extra`],
    ['$BROWSER with an option before the URL', (page: string) => `"$BROWSER" --new-tab '${page}'`],
  ])('opens the page and exits 0 when run as %s', async (_how, command) => {
    const page = `https://login.example/authorize?client_id=c&state=a${Date.now()}`;
    const wrapped = run(['sh', '-c', `${command(page)}; echo "status=$?"; exec sleep 30`]);

    await wrapped.waitForLine(/^status=/);
    await relay.program.waitForLine((line) => line.includes(`Open this page to continue: ${page}`));

    expect(wrapped.output).toContain('status=0');
  });

  it('opens a device-flow page, which names no callback, in the browser on the host', async () => {
    const page = `https://login.example/device?user_code=WDJB-MJHT&n=${Date.now()}`;
    const wrapped = run(['sh', '-c', `xdg-open '${page}' && echo opened && exec sleep 30`]);

    await wrapped.waitForLine(/^opened$/);
    await relay.program.waitForLine((line) => line.includes(`Open this page to continue: ${page}`));

    expect(wrapped.output).not.toMatch(/a login will call back/);
  });

  it('makes the relay refuse a file: or javascript: URL that reaches the agent, and go on', async () => {
    const refusedBefore = relay.program.lines.filter((l) => NOT_A_WEB_PAGE.test(l)).length;
    const page = `https://login.example/after?n=${Date.now()}`;
    const handOff = `'${process.execPath}' -e "$0" 'javascript:alert(1)' 'file:///etc/passwd'`;
    const wrapped = run([
      'sh',
      '-c',
      `${handOff} && xdg-open '${page}' && echo opened && exec sleep 30`,
      HAND_OFF_RAW,
    ]);

    await wrapped.waitForLine(/^opened$/);
    // The relay takes a container's requests in order: the two before this page are settled.
    await relay.program.waitForLine((line) => line.includes(`Open this page to continue: ${page}`));

    expect(relay.program.lines.filter((l) => NOT_A_WEB_PAGE.test(l))).toHaveLength(
      refusedBefore + 2,
    );
    expect(relay.program.output).not.toMatch(/Open this page to continue: (javascript|file):/);
  });

  it('exits 2 with one line of usage on stderr when given nothing it can open', async () => {
    const open = ns.spawn(process.execPath, [
      AGENT_CLI,
      'open',
      '--new-tab',
      'file:///etc/passwd',
      'javascript:alert(1)',
    ]);

    expect(await open.exited).toBe(2);
    expect(open.stdout.filter((l) => l !== '')).toEqual([]);
    expect(open.lines.filter((l) => l !== '')).toEqual([
      'porthole-agent: nothing to open: give an http or https URL (usage: porthole-agent open URL...)',
    ]);
  });

  it('prints the URL and exits 0 when no agent runs in the namespace', async () => {
    const open = ns.spawn(process.execPath, [AGENT_CLI, 'open', 'https://login.example/device']);

    expect(await open.exited).toBe(0);
    expect(open.output).toContain('Open this page to continue: https://login.example/device');
  });
});
