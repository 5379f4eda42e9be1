/**
 * Every size, count and time that porthole's protocol depends on. Both ends read their limits
 * from here so that a change is made once.
 */

/** The wire protocol spoken on `GET /agent`. Bumped on any incompatible change. */
export const PROTOCOL_VERSION = 1;

/** Audience of agent tokens: a token minted for anything else is refused. */
export const TOKEN_AUDIENCE = 'porthole-agent';

/** Issuer of agent tokens. */
export const TOKEN_ISSUER = 'porthole-relay';

/** The names of this machine's loopback that a callback's Host or redirect may use. */
export const LOOPBACK_HOST_NAMES: ReadonlySet<string> = new Set([
  'localhost',
  '127.0.0.1',
  '[::1]',
]);

/** Path of the agents' WebSocket on the relay's port. */
export const AGENT_PATH = '/agent';

/**
 * Beneath the agents' endpoint (`/agent/proof`, or below whatever path a proxy puts in front):
 * the relay signs an agent's nonce there before the agent sends its token.
 */
export const PRE_TOKEN_PROOF_SUFFIX = '/proof';

/** Port the relay listens on unless told otherwise (the original guide's port). */
export const DEFAULT_RELAY_PORT = 8888;

/** Where an agent looks for the relay unless told otherwise. */
export const DEFAULT_RELAY_URL = `ws://host.docker.internal:${DEFAULT_RELAY_PORT}`;

/** Lifetime of a token minted without `--ttl`. */
export const DEFAULT_TOKEN_TTL = '30d';

/** Addresses a mirrored port binds when `--mirror-host` is not given. */
export const DEFAULT_MIRROR_HOSTS: readonly string[] = ['127.0.0.1', '::1'];

/** Bytes in a binary frame header: kind (1), stream id (4), payload length (4). */
export const FRAME_HEADER_BYTES = 9;

/** Largest payload of one binary frame. */
export const MAX_FRAME_PAYLOAD_BYTES = 256 * 1024;

/**
 * Largest payload of a DATA frame this side sends, and the payload room of the recycled frame
 * buffers (see frame-pool.ts); a peer may send up to the limit above. 48 KiB measured best on
 * loopback: such a frame and its WebSocket header fit one TCP segment and one 64 KiB socket
 * read, so fewer messages straddle two reads, which ws then copies to join them. 64 KiB frames
 * cost a fifth more CPU per byte, 256 KiB ones more still.
 */
export const SEND_FRAME_PAYLOAD_BYTES = 48 * 1024;

/** Idle frame buffers a process keeps for reuse; more are left to the garbage collector. */
export const FRAME_POOL_MAX_BYTES = 4 * 1024 * 1024;

/**
 * DATA payloads below this size are built in a buffer of their own size rather than a pooled
 * one: a small frame that waits in a queue should not hold a pooled buffer.
 */
export const MIN_POOLED_PAYLOAD_BYTES = 8 * 1024;

/**
 * Largest WebSocket message either side accepts. A binary message may carry several frames;
 * ws closes the connection with 1009 when a peer sends more.
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** Largest control (text) message. */
export const MAX_CONTROL_MESSAGE_BYTES = 64 * 1024;

/** Largest answer an agent reads from the relay's pre-token proof endpoint (one signature). */
export const MAX_PROOF_ANSWER_BYTES = 4096;

/** Credit each side grants a new stream before the first window update. */
export const INITIAL_STREAM_WINDOW_BYTES = 1024 * 1024;

/**
 * Credit a receiver keeps open on a stream that carries bulk data (once the first window update
 * is due): more than the initial window, so that on a busy machine a sender does not wait for
 * credit while the reader is briefly not scheduled (measured: 5 to 10% more throughput than
 * 1 MiB on loopback). It bounds what a stream holds unread.
 */
export const STREAM_RECEIVE_WINDOW_BYTES = 2 * 1024 * 1024;

/** Consumed bytes that make a receiver send a window update. */
export const WINDOW_UPDATE_THRESHOLD_BYTES = 256 * 1024;

/** Largest send window a peer may grant: more is a flow-control error. */
export const MAX_STREAM_WINDOW_BYTES = 2 ** 31 - 1;

/** Bytes a tunnel stream buffers for its reader before it stops asking for more. */
export const STREAM_READ_BUFFER_BYTES = 256 * 1024;

/**
 * Bytes queued on the WebSocket's socket above which stream writers wait for it to drain. Each
 * stream is bounded by its window; this bounds all of them together.
 */
export const TRANSPORT_HIGH_WATER_BYTES = 4 * 1024 * 1024;

/** Streams one agent connection may have open at once. */
export const MAX_STREAMS_PER_CONNECTION = 4096;

/** Port mappings one agent may ask for. */
export const MAX_MAPPINGS_PER_AGENT = 256;

/** Listening ports one agent may announce. */
export const MAX_LISTENING_PORTS = 1024;

/** Longest authorization URL an agent may ask the relay to open. */
export const MAX_URL_LENGTH = 16 * 1024;

/** Longest OAuth `state` value the relay routes by. */
export const MAX_STATE_LENGTH = 512;

/** Logins one agent may have waiting for their callback at once. */
export const MAX_PENDING_LOGINS = 64;

/** How long a login's `state` stays registered: longer than any provider's login page. */
export const LOGIN_TTL_MS = 15 * 60_000;

/** How often the agent checks whether the container's TCP sockets changed. */
export const PORT_WATCH_INTERVAL_MS = 100;

/**
 * How often the agent reads the kernel's socket tables even though its socket counters say
 * nothing changed (a listener that opened as another socket finished closing leaves them
 * equal). Reading a table walks the kernel's whole connection hash, several milliseconds on a
 * large host, so it is not done on every check.
 */
export const PORT_WATCH_FULL_SCAN_MS = 2_000;

/** Largest request head the relay reads to route a mirrored connection. */
export const MAX_REQUEST_HEAD_BYTES = 32 * 1024;

/**
 * How long the relay waits for the first bytes on a port the user mapped with --map. Browsers
 * speak first; a connection that stays silent there is carried as plain TCP (a server-speaks-
 * first protocol). On other ports silence is not carried anywhere.
 */
export const FIRST_BYTES_TIMEOUT_MS = 1_000;

/** Time a browser connection has to send its whole first request head (slowloris bound). */
export const REQUEST_HEAD_TIMEOUT_MS = 10_000;

/**
 * Connections the kernel queues on each of the relay's listeners before the relay accepts them
 * (it caps the number at net.core.somaxconn, 4096 on current kernels). Node's default, 511,
 * overflows when a page opens a few hundred connections at once; each connection dropped so is
 * retried by the client only after a second.
 */
export const LISTEN_BACKLOG = 4096;

/** Browser connections the relay holds before routing (reading heads, waiting for agents). */
export const MAX_PENDING_CONNECTIONS = 1024;

/** Failed agent authentications from one address, within the window, before it must wait. */
export const MAX_AUTH_FAILURES = 10;

/** The window over which failed authentications are counted, and the wait after too many. */
export const AUTH_FAILURE_WINDOW_MS = 60_000;

/** Addresses whose failures the relay remembers at once (oldest forgotten first). */
export const MAX_TRACKED_AUTH_ADDRESSES = 10_000;

/** Clock difference tolerated between the relay and whoever minted a token. */
export const TOKEN_CLOCK_TOLERANCE_S = 60;

/** How long a stopping relay lets streams in flight finish before it closes its agents. */
export const SHUTDOWN_GRACE_MS = 10_000;

/** Agent names: what a token's `sub` may be. */
export const AGENT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Interval between liveness pings on the agent connection. */
export const PING_INTERVAL_MS = 15_000;

/** Pings in a row without an answer after which the connection is dropped. */
export const MAX_MISSED_PINGS = 2;

/** Time either side waits for the other's half of the handshake. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** First delay before an agent redials a relay it lost. */
export const RECONNECT_MIN_DELAY_MS = 500;

/** Longest delay between an agent's redials. */
export const RECONNECT_MAX_DELAY_MS = 30_000;

/** How long the relay holds a request for an agent that is reconnecting. */
export const DEFAULT_HOLD_MS = 30_000;

/**
 * How long after a callback routed by its `state` a request without one on the same port
 * follows it to the same container (Codex redirects the browser to `/success` there).
 */
export const FOLLOW_UP_MS = 10_000;

/** How long either end of the agent's browser hand-off waits for the other; both answer at once. */
export const HANDOFF_REPLY_TIMEOUT_MS = 2_000;

/** How often an idle status event stream gets a comment line, so proxies and browsers keep it. */
export const STATUS_HEARTBEAT_MS = 15_000;

/** Status pages that may follow the relay's live feed at once. */
export const MAX_STATUS_SUBSCRIBERS = 32;

/** Changes come in bursts (an agent announces ten ports): one status snapshot covers a burst. */
export const STATUS_UPDATE_DELAY_MS = 50;

/** Bytes a status page may leave unread before it is dropped rather than buffered for. */
export const MAX_STATUS_FEED_BUFFER_BYTES = 1024 * 1024;

/** Carried requests the status page lists. */
export const RECENT_REQUESTS = 50;

/** Longest request path the status page shows; a path is the sender's choice, so it is cut. */
export const MAX_SHOWN_PATH_LENGTH = 200;

/** How often a relay on its default addresses looks for container bridges that appeared since. */
export const BRIDGE_SCAN_MS = 2_000;
