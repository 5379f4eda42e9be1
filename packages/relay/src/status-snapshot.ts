import type { MirrorStatus, PortSource } from '@porthole/shared';

import type { AgentRecord } from './agent-record.js';
import type { RequestView } from './carried-requests.js';
import type { LoginSummary } from './logins.js';

/** A port carried into an agent, as the status page shows it. */
export interface PortView {
  hostPort: number;
  containerPort: number;
  addresses: string[];
  status: MirrorStatus;
  /** Why it is carried: mapped, seen listening, named by a login. */
  why: PortSource[];
  detail: string | null;
}

/** An agent as the status page shows it. */
export interface AgentView {
  name: string;
  status: 'connected' | 'reconnecting';
  since: string;
  address: string | null;
  ports: PortView[];
}

/** A login waiting for its callback: the provider's host, never its URL or `state`. */
export interface LoginView {
  id: string;
  agent: string;
  site: string | null;
  port: number;
  path: string;
  since: string;
}

/** Everything the status page shows, as the page and its event stream carry it. */
export interface StatusSnapshot {
  now: string;
  version: string;
  agents: AgentView[];
  logins: LoginView[];
  requests: RequestView[];
}

/** Takes a snapshot of the relay's state for the status page. */
export function statusSnapshot(
  version: string,
  records: Iterable<AgentRecord>,
  logins: LoginSummary[],
  requests: RequestView[],
): StatusSnapshot {
  const now = new Date();

  return {
    now: now.toISOString(),
    version,
    agents: [...records].map((record) => agentView(record, now)).sort(byName),
    logins: logins.map((login) => ({ ...login, since: login.since.toISOString() })),
    requests,
  };
}

function agentView(record: AgentRecord, now: Date): AgentView {
  const { connection } = record;

  return {
    name: record.name,
    status: record.connected ? 'connected' : 'reconnecting',
    since: (connection?.connectedAt ?? record.awaySince ?? now).toISOString(),
    address: connection?.address ?? null,
    ports: [...record.ports.values()]
      .map((entry) => ({
        hostPort: entry.hostPort,
        containerPort: entry.containerPort,
        addresses: entry.addresses,
        status: entry.status,
        why: [...entry.sources],
        detail: entry.detail ?? null,
      }))
      .sort((a, b) => a.hostPort - b.hostPort),
  };
}

function byName(a: AgentView, b: AgentView): number {
  return a.name.localeCompare(b.name);
}
