// A network namespace that stands in for a container: its own loopback, and a veth link to the
// host on which the container reaches the relay. Needs root and iproute2; `create` returns null
// where they are missing, so that the caller can fall back to the host's loopback.
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';

import { startChild } from './children.mjs';

// Link subnets 10.214.N.0/30, away from the tests' 10.213.N.0/30.
const SUBNET_PREFIX = '10.214';

/** Creates a namespace linked to the host, or returns null (with why) when it cannot. */
export function createNamespace() {
  if (process.getuid?.() !== 0) return { ns: null, why: 'network namespaces need root' };

  const name = `porthole-bench-${process.pid}`;

  try {
    ip('netns', 'add', name);
  } catch (err) {
    return { ns: null, why: `ip netns add failed: ${firstLine(err)}` };
  }

  for (let attempt = 0; attempt < 32; attempt += 1) {
    const subnet = randomInt(0, 256);
    const hostLink = `phb214s${subnet}h`;

    // Creating the link claims its subnet: a link of that name already there makes this fail.
    try {
      ip('link', 'add', hostLink, 'type', 'veth', 'peer', 'name', `phb214s${subnet}c`);
    } catch {
      continue;
    }

    const ns = namespace(name, subnet, hostLink);

    try {
      ns.configure(`phb214s${subnet}c`);
      return { ns, why: null };
    } catch (err) {
      ns.destroy();
      return { ns: null, why: `could not link the namespace: ${firstLine(err)}` };
    }
  }

  ip('netns', 'del', name);
  return { ns: null, why: 'no free link subnet for the namespace' };
}

function namespace(name, subnet, hostLink) {
  const hostAddress = `${SUBNET_PREFIX}.${subnet}.1`;
  const address = `${SUBNET_PREFIX}.${subnet}.2`;
  const inside = (...args) => ip('netns', 'exec', name, 'ip', ...args);

  return {
    name,
    /** The host's end of the link: where the container reaches the relay. */
    hostAddress,
    configure(innerLink) {
      ip('link', 'set', innerLink, 'netns', name);
      // As in the tests: no delayed IPv6 link-local address on the host's end, whose arrival
      // would break a Chromium test running beside this benchmark (ERR_NETWORK_CHANGED).
      writeFileSync(`/proc/sys/net/ipv6/conf/${hostLink}/disable_ipv6`, '1');
      ip('addr', 'add', `${hostAddress}/30`, 'dev', hostLink);
      ip('link', 'set', hostLink, 'up');
      inside('addr', 'add', `${address}/30`, 'dev', innerLink);
      inside('link', 'set', innerLink, 'up');
      inside('link', 'set', 'lo', 'up');
    },
    /** Starts a program inside the namespace (see startChild). */
    start(label, command, args, options) {
      return startChild(label, 'ip', ['netns', 'exec', name, command, ...args], options);
    },
    destroy() {
      for (const args of [
        ['netns', 'del', name],
        ['link', 'del', hostLink],
      ]) {
        try {
          ip(...args);
        } catch {
          // Already gone: deleting the namespace takes its end of the link with it.
        }
      }
    },
  };
}

function ip(...args) {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

function firstLine(err) {
  return String(err.stderr ?? err.message)
    .trim()
    .split('\n')[0];
}
