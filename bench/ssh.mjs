// The ssh -R path: client → sshd's forwarded port → ssh connection → ssh client → server. sshd
// runs on a loopback port with a config, host key and client key made for this run only.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { rssBytes, runToEnd, startChild, stopChild, treeRssBytes } from './children.mjs';
import { canConnect, freePort, LOOPBACK, pollUntil } from './net.mjs';

const SSHD = '/usr/sbin/sshd';
const APT_GET = '/usr/bin/apt-get';
const APT_TIMEOUT_MS = 300_000;
const READY_TIMEOUT_MS = 15_000;

/**
 * Why the ssh -R path cannot run here, or null if it can. A missing sshd is installed from the
 * distribution's packages when we are root with apt-get: machines come without it.
 */
export async function sshUnavailable() {
  if (process.getuid?.() !== 0) return 'sshd needs root to run its privilege separation';
  if (existsSync(SSHD)) return null;
  if (!existsSync(APT_GET)) return `${SSHD} is missing and there is no apt-get to install it`;

  process.stderr.write('bench: installing openssh-server for the ssh -R column\n');
  try {
    await aptGet('install', '-y', '-qq', 'openssh-server');
  } catch {
    // A fresh machine may have no package lists yet.
    try {
      await aptGet('update', '-qq');
      await aptGet('install', '-y', '-qq', 'openssh-server');
    } catch (err) {
      return `${SSHD} is missing and apt-get install openssh-server failed: ${err.message.split('\n')[0]}`;
    }
  }

  return existsSync(SSHD) ? null : `${SSHD} is still missing after installing openssh-server`;
}

function aptGet(...args) {
  return runToEnd('apt-get', APT_GET, args, {
    env: { DEBIAN_FRONTEND: 'noninteractive' },
    timeoutMs: APT_TIMEOUT_MS,
  });
}

/** Starts sshd and one `ssh -N -R` that forwards a fresh port to `serverPort`. */
export async function startSsh({ serverPort, tmp, idleMs }) {
  const dir = join(tmp, 'ssh');

  mkdirSync(dir, { mode: 0o700 });
  await makeKey(join(dir, 'host_key'));
  await makeKey(join(dir, 'client_key'));

  const sshdPort = await freePort();
  const sshd = startChild('sshd', SSHD, ['-D', '-e', '-f', writeConfig(dir, sshdPort)]);
  const launchForward = async (label) => {
    const hostPort = await freePort();
    const ssh = startChild(label, 'ssh', sshArgs(dir, sshdPort, hostPort, serverPort));

    return { ssh, hostPort, ready: waitForForward(ssh, hostPort) };
  };
  let main;

  // ssh -R may be skipped when it fails to start: then nothing of it may linger.
  try {
    await waitForSshd(sshd, sshdPort);
    main = await launchForward('ssh -R');
    await main.ready;
  } catch (err) {
    if (main !== undefined) await stopChild(main.ssh);
    await stopChild(sshd);
    throw err;
  }

  return {
    port: main.hostPort,
    processes: [sshd, main.ssh],
    // A fresh ssh -R each time: spawn to its forwarded port accepting, then its idle memory.
    async measureStart() {
      const started = performance.now();
      const fresh = await launchForward('ssh -R (start)');

      try {
        await fresh.ready;
        const startMs = performance.now() - started;

        await sleep(idleMs);
        return { startMs, agentRss: rssBytes(fresh.ssh.pid), relayRss: treeRssBytes(sshd.pid) };
      } finally {
        await stopChild(fresh.ssh);
      }
    },
    async close() {
      await stopChild(main.ssh);
      await stopChild(sshd);
    },
  };
}

async function makeKey(file) {
  await runToEnd('ssh-keygen', 'ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    'bench',
    '-f',
    file,
  ]);
}

// Root may log in with the throwaway key and nothing else, from loopback, to forward ports.
function writeConfig(dir, port) {
  const file = join(dir, 'sshd_config');

  // sshd refuses to start without its privilege separation directory; packages make it at boot.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  writeFileSync(
    file,
    [
      `Port ${port}`,
      `ListenAddress ${LOOPBACK}`,
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${join(dir, 'client_key.pub')}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'AllowTcpForwarding remote',
      'GatewayPorts no',
      'X11Forwarding no',
      'PermitTTY no',
      'PidFile none',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );

  return file;
}

function sshArgs(dir, sshdPort, hostPort, serverPort) {
  return [
    ...['-F', 'none', '-N', '-p', String(sshdPort), '-i', join(dir, 'client_key')],
    ...['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'],
    ...['-o', 'BatchMode=yes', '-o', 'ExitOnForwardFailure=yes', '-o', 'LogLevel=ERROR'],
    ...['-R', `${hostPort}:${LOOPBACK}:${serverPort}`],
    `root@${LOOPBACK}`,
  ];
}

function waitForSshd(sshd, port) {
  return pollUntil(
    async () => {
      if (sshd.exited) throw new Error(`sshd exited:\n${sshd.output.trim()}`);

      return canConnect(port);
    },
    { what: `sshd listening on ${port}`, timeoutMs: READY_TIMEOUT_MS },
  );
}

function waitForForward(ssh, hostPort) {
  return pollUntil(
    async () => {
      if (ssh.exited) throw new Error(`${ssh.label} exited:\n${ssh.output.trim()}`);

      return canConnect(hostPort);
    },
    { what: `ssh -R forwarding port ${hostPort}`, timeoutMs: READY_TIMEOUT_MS },
  );
}
