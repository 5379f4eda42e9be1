import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Namespace } from '../helpers/netns.js';
import { freePort } from '../helpers/ports.js';
import { AGENT_CLI } from '../helpers/processes.js';
import { mintToken, type RelayProcess, startRelayProcess } from '../helpers/relay.js';

const SIGNAL_EXIT = fileURLToPath(new URL('../fixtures/signal-exit.mjs', import.meta.url));

interface ListedPort {
  hostPort: number;
  status: string;
  sources: string[];
}

async function portsOf(relay: RelayProcess, name: string): Promise<ListedPort[]> {
  const body = (await (await fetch(`${relay.url}/api/agents`)).json()) as {
    agents: { name: string; ports: ListedPort[] }[];
  };

  return body.agents.find((a) => a.name === name)?.ports ?? [];
}

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

  afterAll(async () => {
    await relay?.program.stop();
    ns?.destroy();
  });

  function run(command: string[]) {
    return ns.spawn(process.execPath, [AGENT_CLI, 'run', '--relay', relayUrl, '--', ...command], {
      PORTHOLE_TOKEN: token,
    });
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

    expect(await portsOf(relay, 'wrapped')).toContainEqual(
      expect.objectContaining({ hostPort: port, status: 'mirrored', sources: ['login'] }),
    );
    wrapped.child.kill('SIGTERM');
    await wrapped.exited;
  });

  it('prints the URL and exits 0 when no agent runs in the namespace', async () => {
    const open = ns.spawn(process.execPath, [AGENT_CLI, 'open', 'https://login.example/device']);

    expect(await open.exited).toBe(0);
    expect(open.output).toContain('Open this page to continue: https://login.example/device');
  });
});
