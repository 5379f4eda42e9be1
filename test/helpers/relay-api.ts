/** One mirrored port as `GET /api/agents` lists it. */
export interface ListedPort {
  hostPort: number;
  containerPort: number;
  status: string;
  /** The latest of `sources`. */
  source?: string;
  /** What asked for the mirror: `map`, `listening`, `login`. */
  sources: string[];
}

/** One agent as `GET /api/agents` lists it, with the fields the tests read. */
export interface ListedAgent {
  name: string;
  ports: ListedPort[];
}

/** The agents the relay at `relayUrl` lists. */
export async function listAgents(relayUrl: string): Promise<ListedAgent[]> {
  const res = await fetch(`${relayUrl}/api/agents`);

  return ((await res.json()) as { agents: ListedAgent[] }).agents;
}

/** The ports the relay lists for agent `name`: none when it does not list the agent. */
export async function portsOf(relayUrl: string, name: string): Promise<ListedPort[]> {
  return (await listAgents(relayUrl)).find((agent) => agent.name === name)?.ports ?? [];
}
