import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Server } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { PortWatcher, socketCounters } from '../src/port-watcher.js';

const LISTEN_AND_SAY_PORT =
  "const s = require('node:net').createServer();" +
  "s.listen(0, '127.0.0.1', () => console.log(s.address().port));";

describe('PortWatcher', () => {
  let own: Server;
  let ownPort: number;
  let other: ChildProcess;
  let otherPort: number;

  beforeAll(async () => {
    own = createServer();
    own.listen(0, '127.0.0.1');
    await once(own, 'listening');
    ownPort = (own.address() as AddressInfo).port;

    const child = spawn(process.execPath, ['-e', LISTEN_AND_SAY_PORT], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(child.stdout, 'data')) as [Buffer];

    other = child;
    otherPort = Number(line.toString().trim());
  });

  afterAll(() => {
    own?.close();
    other?.kill();
  });

  it("leaves out its own process's listeners and reports another process's", async () => {
    // Only the two ports of this test count: the machine has listeners of its own.
    const watcher = new PortWatcher(
      (port) => port === ownPort || port === otherPort,
      () => undefined,
    );

    expect(await watcher.refresh()).toEqual([otherPort]);
  });
});

const SOCKSTAT = (inUse: number, tw: number, mem: number) =>
  `sockets: used 9\nTCP: inuse ${inUse} orphan 0 tw ${tw} alloc 14 mem ${mem}\n` +
  'UDP: inuse 0 mem 0\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n';
const SOCKSTAT6 = (inUse: number) =>
  `TCP6: inuse ${inUse}\nUDP6: inuse 0\nUDPLITE6: inuse 0\nRAW6: inuse 0\nFRAG6: inuse 0 memory 0\n`;
const SNMP = (opens: number, established: number, segments: number) =>
  'Ip: Forwarding DefaultTTL\nIp: 1 64\n' +
  'Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets ' +
  'CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n' +
  `Tcp: 1 200 120000 -1 ${opens} 7 0 1 ${established} ${segments} ${segments} 0 0 2 0\n` +
  'Udp: InDatagrams NoPorts\nUdp: 5 0\n';

describe('socketCounters', () => {
  const base = socketCounters(SOCKSTAT(3, 1, 10), SOCKSTAT6(2), SNMP(40, 2, 900));

  it('reads the sockets in use over IPv4 and IPv6', () => {
    expect(base).toMatchObject({ inUse: 3, inUse6: 2 });
  });

  it('changes with a socket more in use, in TIME_WAIT, opened or established', () => {
    for (const moved of [
      socketCounters(SOCKSTAT(4, 1, 10), SOCKSTAT6(2), SNMP(40, 2, 900)),
      socketCounters(SOCKSTAT(3, 2, 10), SOCKSTAT6(2), SNMP(40, 2, 900)),
      socketCounters(SOCKSTAT(3, 1, 10), SOCKSTAT6(3), SNMP(40, 2, 900)),
      socketCounters(SOCKSTAT(3, 1, 10), SOCKSTAT6(2), SNMP(41, 2, 900)),
      socketCounters(SOCKSTAT(3, 1, 10), SOCKSTAT6(2), SNMP(40, 1, 900)),
    ]) {
      expect(moved?.key).not.toBe(base?.key);
    }
  });

  it('stays the same when bytes flow or the machine-wide memory figure moves', () => {
    const busy = socketCounters(SOCKSTAT(3, 1, 250), SOCKSTAT6(2), SNMP(40, 2, 123_456));

    expect(busy?.key).toBe(base?.key);
  });

  it('gives up without the IPv4 counters, and reads the IPv6 table without its counters', () => {
    expect(socketCounters('', SOCKSTAT6(2), SNMP(40, 2, 900))).toBeUndefined();
    expect(socketCounters(SOCKSTAT(3, 1, 10), '', SNMP(40, 2, 900))?.inUse6).toBeNaN();
  });
});
