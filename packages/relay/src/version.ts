/** The relay's software version, shown in `/health` and sent to agents. */
export const RELAY_SOFTWARE = 'porthole-relay/0.1.0';
