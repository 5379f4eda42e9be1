import type { RegisterMessage } from '@porthole/shared';
import { describe, expect, it } from 'vitest';

import { AgentRecord } from '../src/agent-record.js';
import { LoginBook } from '../src/logins.js';
import type { PortBook } from '../src/port-book.js';
import { NO_EVENTS, type RelayEvents } from '../src/relay-events.js';

const ports = { add: async () => null, remove: () => undefined } as unknown as PortBook;
// A login on the port and with the state that URL_WITH_STATE names.
const REGISTER: RegisterMessage = {
  type: 'register',
  port: 43817,
  path: '/callback',
  state: 's3cr3t',
};
const URL_WITH_STATE =
  'https://login.example.com/authorize?client_id=cli&redirect_uri=http%3A%2F%2Flocalhost%3A43817%2Fcallback&state=s3cr3t';

function book(): { logins: LoginBook; changes: () => number } {
  let changes = 0;
  const events: RelayEvents = { ...NO_EVENTS, changed: () => (changes += 1) };

  return { logins: new LoginBook(ports, events), changes: () => changes };
}

describe('LoginBook for the status page', () => {
  it("lists a waiting login by its provider's host, never its URL or state", async () => {
    const { logins, changes } = book();
    const dev = new AgentRecord('dev');

    await logins.register(dev, REGISTER);
    logins.notePage(dev, URL_WITH_STATE);

    const [login] = logins.waiting();

    expect(login).toMatchObject({
      agent: 'dev',
      port: 43817,
      path: '/callback',
      site: 'login.example.com',
    });
    expect(JSON.stringify(logins.waiting())).not.toContain('s3cr3t');
    expect(login?.id).not.toContain('s3cr3t');
    expect(logins.pageOf(login?.id ?? '')).toEqual({ agent: 'dev', url: URL_WITH_STATE });
    expect(changes()).toBe(2);
  });

  it('keeps a page only with the login of the agent that registered its state', async () => {
    const { logins } = book();
    const [dev, other] = [new AgentRecord('dev'), new AgentRecord('other')];

    await logins.register(dev, REGISTER);
    logins.notePage(other, URL_WITH_STATE);

    expect(logins.waiting()[0]?.site).toBeNull();
  });

  it('takes a login off the list once its callback arrived', async () => {
    const { logins } = book();
    const dev = new AgentRecord('dev');

    await logins.register(dev, REGISTER);
    logins.notePage(dev, URL_WITH_STATE);

    const id = logins.waiting()[0]?.id ?? '';

    logins.arrived('s3cr3t');

    expect(logins.waiting()).toEqual([]);
    expect(logins.pageOf(id)).toBeUndefined();
    expect(logins.ownerOf('s3cr3t')).toBe(dev);
  });
});
