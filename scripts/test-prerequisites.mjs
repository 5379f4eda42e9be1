// Makes sure the programs the end-to-end tests drive are present: iproute2 (network namespaces
// stand in for containers), Debian's Chromium (real browser logins), openssl (throwaway TLS
// certificates), systemd's systemd-analyze (checks the example unit file; installing the
// package starts nothing where systemd does not run) and OpenSSH's server for the benchmark's
// ssh -R column. On Debian or Ubuntu as root it installs what is missing; elsewhere it says
// what to install and stops.
import { execFileSync, spawnSync } from 'node:child_process';

const NEEDED = [
  { command: 'ip', pkg: 'iproute2' },
  { command: 'chromium', pkg: 'chromium' },
  { command: 'openssl', pkg: 'openssl' },
  { command: 'systemd-analyze', pkg: 'systemd' },
  { command: 'sshd', pkg: 'openssh-server' },
];

function has(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

const missing = NEEDED.filter(({ command }) => !has(command)).map(({ pkg }) => pkg);

if (missing.length > 0) {
  const root = process.getuid?.() === 0;

  if (process.platform !== 'linux' || !root || !has('apt-get')) {
    console.error(
      `The tests need ${missing.join(', ')} and run on Linux as root (for network namespaces).\n` +
        `Install them (Debian: apt-get install ${missing.join(' ')}) and run the tests again.`,
    );
    process.exit(1);
  }

  console.log(`Installing ${missing.join(', ')} for the tests…`);

  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };

  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    stdio: 'inherit',
    env,
  });
}
