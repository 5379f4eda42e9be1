import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { AuthServer } from '../helpers/auth-server.js';
import { launchChromium, openUntilText } from '../helpers/browser.js';
import { httpRequest } from '../helpers/http-client.js';
import { OPEN_PROMPT, promptedUrl, redirectOf, stateOf } from '../helpers/login-pages.js';
import { Namespace } from '../helpers/netns.js';
import { AGENT_CLI } from '../helpers/processes.js';
import { mintToken, startRelayProcess } from '../helpers/relay.js';

const TOOL = fileURLToPath(new URL('../fixtures/oauth-cli.mjs', import.meta.url));

describe('a whole login at debug level', () => {
  it('keeps the code, the token and the callback header values out of logs, pages and the API', async () => {
    const ns = Namespace.create();
    const auth = await AuthServer.start();
    const browser = await launchChromium();
    const relay = await startRelayProcess({ args: ['--host', ns.hostAddress, '--no-open'] });
    const token = await mintToken(relay.keyFile, 'secretive');
    const tool = ns.spawn(
      process.execPath,
      [
        AGENT_CLI,
        'run',
        '--relay',
        `ws://${ns.hostAddress}:${relay.port}`,
        '--log-level',
        'debug',
        '--',
      ].concat([process.execPath, TOOL, '--auth', auth.authorizeUrl, '--launch', 'browser-env']),
      { PORTHOLE_TOKEN: token },
    );

    try {
      const url = await promptedUrl(relay);
      const state = stateOf(url);
      const context = await browser.newContext({
        extraHTTPHeaders: { 'x-callback-secret': 'HEADERVALUE4242' },
      });
      const callbackPort = Number(redirectOf(url).port);

      await context.addCookies([
        { name: 'sid', value: 'COOKIEVALUE2323', domain: 'localhost', path: '/' },
      ]);
      await openUntilText(await context.newPage(), url, 'Login complete');
      await tool.waitForLine(/got code=/);

      const code = auth.codeFor(state)?.code ?? 'missing';
      // Pages and API answers a user or a page could read, including error pages.
      const answers = [
        await httpRequest(`${relay.url}/api/agents`),
        await httpRequest(`${relay.url}/health`),
        await httpRequest(
          `http://localhost:${relay.port}/oauth/callback?code=${code}&state=${state}`,
        ),
        await httpRequest(`http://localhost:${callbackPort}/callback?code=${code}&state=${state}`, {
          headers: { host: 'evil.example' },
        }),
      ].map((res) => res.body.toString());
      const relayLogs = relay.program.lines.filter((line) => !OPEN_PROMPT.test(line));
      const agentLogs = tool.records
        .filter((r) => r['name'] === 'porthole-agent')
        .map((r) => JSON.stringify(r));
      const secrets = [code, token, 'HEADERVALUE4242', 'COOKIEVALUE2323', state];

      expect(code).not.toBe('missing');
      expect(agentLogs.length).toBeGreaterThan(3);
      for (const secret of secrets) {
        expect(relayLogs.join('\n')).not.toContain(secret);
        expect(agentLogs.join('\n')).not.toContain(secret);
        expect(answers.join('\n')).not.toContain(secret);
      }

      // The state appears once: in the page the user is asked to open.
      expect(relay.program.lines.filter((line) => line.includes(state))).toHaveLength(1);
      await context.close();
    } finally {
      await tool.stop();
      await relay.program.stop();
      await browser.close();
      await auth.close();
      ns.destroy();
    }
  }, 60_000);
});
