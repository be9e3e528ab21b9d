/**
 * Every limit of the broker in one place, `UPPER_SNAKE_CASE`, unit last.
 *
 * A limit that can be changed at run time has a flag (see `config.ts`); the
 * constant here is its default. Going over a limit is always a visible event:
 * an `ERR` to the client, a typed close reason, or a counted drop.
 *
 * @module
 */

/** A control line longer than this is a framing error: it bounds what one unterminated line can buffer. */
export const CONTROL_LINE_BYTES_MAX = 4096;
/** Default largest payload (headers + body) of one message; NATS's default too. */
export const PAYLOAD_BYTES_MAX = 1024 * 1024;
/** Largest header block inside a payload; headers are metadata, not a second body. */
export const HEADERS_BYTES_MAX = 64 * 1024;
/** Longest destination, `queue:`/`topic:` prefix included. */
export const DESTINATION_BYTES_MAX = 256;
/** Longest subscription id, correlation id, reply-to or content type value. */
export const TOKEN_BYTES_MAX = 256;
/** Most `key:value` options on one control line; stops a line of thousands of tiny options. */
export const OPTIONS_MAX = 32;
/** Most message ids one `ACK` line may carry (batched acks; ~170 ids of 16 digits fill a control line). */
export const ACK_IDS_MAX = 256;

/** Outbound bytes a connection may have waiting for the socket before it is a slow consumer. */
export const PENDING_BYTES_MAX = 64 * 1024 * 1024;
/** Above this many pending outbound bytes, topic fan-out to the connection pauses (messages wait in the topic). */
export const PENDING_BYTES_HIGH = 4 * 1024 * 1024;
/**
 * Smallest outbound buffers (512 B) that quiet connections gave back, kept for the next to write
 * (server/outbound.ts); more are left to the collector. 512 KiB at most.
 */
export const OUTBOUND_POOL_BUFFERS_MAX = 1024;
/**
 * Bytes of each slab the subscriptions' MSG heads are cut from (protocol/encoder.ts): a head is
 * a view, not a small ArrayBuffer of its own (~0.8 KiB of RSS each on Deno). A head alive pins its
 * slab; a head longer than an eighth of it gets its own buffer.
 */
export const MSG_HEAD_SLAB_BYTES = 4096;
/**
 * Bytes of the MSG frames a run of plain PUBs to one topic is encoded into once for all its
 * subscribers (protocol/msg_run.ts; one scratch per broker, grown on use, with the frames' start
 * offsets beside it, 4 B per frame of at least ~40 B): a longer run is fanned out in pieces of this
 * size. A 256 KiB read of 16 B PUBs makes ~0.45 MiB of MSG frames.
 */
export const FANOUT_RUN_BYTES_MAX = 1024 * 1024;
/**
 * Bytes of each slab the connections' last MSG lines are cut from (protocol/msg_line.ts): one
 * line (~60-300 B) per connection that receives plain messages, a view rather than a small
 * ArrayBuffer of its own; an idle connection gives its line up. A line longer than this gets a
 * slab of its own size.
 */
export const MSG_LINE_SLAB_BYTES = 16384;
/** Messages a topic subscription may fall behind before the slow-consumer policy applies. */
export const SUB_PENDING_MESSAGES_MAX = 65536;
/** Bytes a topic subscription may fall behind before the slow-consumer policy applies. */
export const SUB_PENDING_BYTES_MAX = 64 * 1024 * 1024;
/** Under `--slow-consumer block`, how long publishers wait for a stalled subscriber before it is disconnected. */
export const SLOW_CONSUMER_BLOCK_MS = 5_000;
/** Longest `--slow-consumer-block-ms`: a publisher paused longer would look dead to its own peers. */
export const SLOW_CONSUMER_BLOCK_MS_MAX = 60_000;

/** Subscriptions one connection may hold. */
export const SUBSCRIPTIONS_PER_CONNECTION_MAX = 10_000;
/** Permission decisions one user's cache keeps (destination -> bits); cleared when full, refilled by use. */
export const PERMISSION_DECISIONS_MAX = 4096;
/** Reply-to destinations an `allow_responses` connection may answer at once; the oldest is forgotten first. */
export const RESPONSE_GRANTS_MAX = 1024;
/** How long a received message's reply-to stays open for a response (`allow_responses`). */
export const RESPONSE_GRANT_MS = 10 * 60_000;
/** Open connections; more are accepted, sent `ERR`, and closed. */
export const CONNECTIONS_MAX = 10_000;
/** Destinations (queues + topics) the broker keeps; bounds the name maps. */
export const DESTINATIONS_MAX = 100_000;

/** Default messages one queue may hold (ready + in flight + delayed). */
export const QUEUE_MESSAGES_MAX = 10_000_000;
/** Default payload bytes one queue may hold. */
export const QUEUE_BYTES_MAX = 1024 * 1024 * 1024;
/** Default unacked messages per consumer (prefetch); 0 is not allowed, it would stall. */
export const PREFETCH_DEFAULT = 1000;
/** Largest prefetch a consumer may ask for. */
export const PREFETCH_MAX = 65536;
/** Default time a consumer has to ACK a message before it is redelivered. */
export const ACK_TIMEOUT_MS = 30_000;
/** Largest ack timeout a consumer may ask for (one day). */
export const ACK_TIMEOUT_MS_MAX = 86_400_000;
/** Default deliveries before a message is dead-lettered. */
export const DELIVERIES_MAX = 5;
/** Longest NACK delay (one day). */
export const NACK_DELAY_MS_MAX = 86_400_000;
/** Longest TTL (30 days). */
export const TTL_MS_MAX = 30 * 86_400_000;
/** Most topics declared with retention: every declaration is in the one state record rewritten on each change. */
export const DECLARED_TOPICS_MAX = 10_000;
/** Most durable topic subscriptions on the server; they live until removed, so they are bounded. */
export const DURABLES_MAX = 10_000;
/** Most messages a declared topic may retain; retained messages are held in memory, like a queue's. */
export const RETAIN_MESSAGES_MAX = QUEUE_MESSAGES_MAX;
/** Most payload bytes a declared topic may retain (the same bound as one queue). */
export const RETAIN_BYTES_MAX = QUEUE_BYTES_MAX;
/** Longest retention age of a declared topic (30 days, as the longest TTL). */
export const RETAIN_AGE_MS_MAX = 30 * 86_400_000;
/** Most queues declared with settings (`DECLARE queue:`): every declaration is in the one state record rewritten on each change. */
export const DECLARED_QUEUES_MAX = 10_000;
/** Largest `max_messages` of a declared queue (as `--queue-max-messages`). */
export const DECLARED_QUEUE_MESSAGES_MAX = 1_000_000_000;
/** Largest `max_bytes` of a declared queue (as `--queue-max-bytes`). */
export const DECLARED_QUEUE_BYTES_MAX = 2 ** 50;
/** Largest `max_deliveries` of a declared queue (as `--max-deliveries`). */
export const DECLARED_DELIVERIES_MAX = 1000;
/** Longest `PUB ... delay:` (30 days, as the longest TTL): a schedule is a short wait, not a calendar. */
export const PUB_DELAY_MS_MAX = 30 * 86_400_000;
/** Largest `PUB ... deliver_at:` (the same bound as `start:time:`, past the year 2248). */
export const DELIVER_AT_MS_MAX = 2 ** 43;
/**
 * Least time between two wake-ups of the due-time timer: under a stream of
 * scheduled messages the timer fires at most this often, each time making
 * every due message visible (a message is late by at most this, plus
 * event-loop lag).
 */
export const SCHEDULE_TICK_MS = 5;
/** Default deduplication window of a destination (2 minutes, as JetStream's). */
export const DEDUP_WINDOW_MS = 120_000;
/** Longest `dedup_window` of a declared queue (one day). */
export const DEDUP_WINDOW_MS_MAX = 86_400_000;
/** Topics with a dedup window (a queue's window lives and goes with the queue). */
export const DEDUP_TOPICS_MAX = 10_000;
/** Dedup ids one destination remembers; past it the oldest is forgotten first. */
export const DEDUP_ENTRIES_MAX = 100_000;
/** Bytes of dedup ids one destination remembers (ids only, UTF-16 length); past it the oldest is forgotten first. */
export const DEDUP_BYTES_MAX = 8 * 1024 * 1024;
/** How often expired messages and ack timeouts are swept. */
export const SWEEP_INTERVAL_MS = 250;
/** Ids of messages delivered without explicit acks remembered per connection, so that their ACK is a no-op, not an error. */
export const RECENT_UNACKED_IDS = 1024;

/** Idle time before the server PINGs a client. */
export const PING_INTERVAL_MS = 30_000;
/** Unanswered PINGs before a client is dropped as stale. */
export const PINGS_OUTSTANDING_MAX = 2;
/** Time a graceful shutdown waits for outbound buffers to drain. */
export const SHUTDOWN_FLUSH_MS = 5_000;
/** Time a closing connection waits for its outbound bytes (the `ERR` that says why, say) before it drops them. */
export const CLOSE_FLUSH_MS = 2_000;
/** Closed connections kept for the admin API. */
export const CLOSED_CONNECTIONS_KEPT = 100;
/** First back-off of the accept loop after an accept error; it doubles up to `ACCEPT_BACKOFF_MS_MAX`. */
export const ACCEPT_BACKOFF_MS_MIN = 5;
/** Longest back-off of the accept loop after an accept error. */
export const ACCEPT_BACKOFF_MS_MAX = 1_000;

/** Largest page (`?limit=`) of a list in `/api/stats`; bounds one response. */
export const STATS_LIMIT_MAX = 100_000;
/** Default page of a list in `/api/stats`. */
export const STATS_LIMIT_DEFAULT = 1024;
/** Closed connections `/api/stats` lists by default: all that the server keeps. */
export const STATS_CLOSED_DEFAULT = CLOSED_CONNECTIONS_KEPT;
/**
 * Queues, and as many topics, with per-destination series in `/metrics`: at
 * 10,000 queues one scrape was 5.4 MB and blocked the event loop for 0.4-1.5 s,
 * at 1,000 it was 0.5 MB and 30-70 ms (the number left out is exported).
 */
export const METRICS_DESTINATIONS_MAX = 2_000;

/** A log segment is sealed and a new one started past this size: bounds one file and the unit of deletion. */
export const SEGMENT_BYTES_MAX = 64 * 1024 * 1024;
/** Default time between fdatasyncs under `--fsync interval`: what a power cut can lose. */
export const FSYNC_INTERVAL_MS = 100;
/** Wait before a failed log write or fsync is tried again, so that a full disk is not hammered. */
export const STORE_RETRY_MS = 1_000;
/** Live bytes one compaction step copies at most, so that one step is a short pause. */
export const COMPACT_STEP_BYTES_MAX = 4 * 1024 * 1024;
/** Least time between two compaction steps of one queue, so that copying never crowds out publishing. */
export const COMPACT_STEP_INTERVAL_MS = 20;

// --- authentication (issue #14) ---
/** Default time a connection has to authenticate when auth is on (`--auth-timeout`). */
export const AUTH_TIMEOUT_MS = 2_000;
/** Remote addresses whose failed logins are remembered; the oldest is forgotten first (an address flood costs no memory). */
export const AUTH_FAILED_ADDRESSES_MAX = 10_000;
/** Delay before answering the first failed login of an address; doubles with each further failure. */
export const AUTH_FAIL_DELAY_MS_MIN = 100;
/** Cap of the growing delay before a failed login is answered (the connection reads nothing meanwhile). */
export const AUTH_FAIL_DELAY_MS_MAX = 5_000;
/**
 * The failed logins of one address are answered one after another, each after its delay; an
 * address with more than this much waiting is refused at once, its credentials unchecked, until
 * the backlog drains: parallel connections cannot guess faster, and cannot pile up for ever.
 */
export const AUTH_FAIL_BACKLOG_MS_MAX = 60_000;
/** An address with no failed login for this long starts again from no failures. */
export const AUTH_FAIL_FORGET_MS = 10 * 60_000;
/**
 * Credential checks of one address at once; more wait their turn. Failures
 * are recorded when a check ends, so without it a burst of parallel logins
 * from one address was all checked (a scrypt each) before the first counted.
 */
export const AUTH_CHECKS_PER_ADDRESS_MAX = 4;
/** Entries of a users file. */
export const AUTH_USERS_MAX = 100_000;
/** Random bytes of the nonce a key user signs (base64url in `INFO`). */
export const AUTH_NONCE_BYTES = 24;
/** Longest credential string in a `CONNECT` (token, password); the control line bounds the rest. */
export const AUTH_SECRET_BYTES_MAX = 1_024;
/** Largest memory one scrypt hash of the users file may ask for (128 * N * r): a verification allocates it. */
export const AUTH_SCRYPT_MEMORY_BYTES_MAX = 256 * 1024 * 1024;
/** Time a client has to finish its TLS handshake; a peer that opens a socket and says nothing is closed then. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** TLS handshakes in progress at once, per listener; more are closed at once and counted as failed, so a flood of silent sockets costs bounded memory. */
export const TLS_HANDSHAKES_PENDING_MAX = 1_024;
/** Failed TLS handshakes logged one by one per second; beyond, one line says how many more (a port scan must not flood the log). */
export const TLS_FAILURE_LOGS_PER_S = 10;
/** Longest `filter` selector: it is parsed once per subscription, but it rides on one control line. */
export const FILTER_BYTES_MAX = 1024;
/** Deepest nesting of parentheses and NOTs in a selector: bounds the parser's recursion. */
export const FILTER_DEPTH_MAX = 32;
/** Most topic-to-queue bindings (`BIND`): all of them are in the one bindings record rewritten on each change. */
export const BINDINGS_MAX = 10_000;
/** Topic names whose matching bindings are cached; past it the cache starts over (a name is re-matched once). */
export const ROUTE_CACHE_TOPICS_MAX = 10_000;
// --- gRPC front end (src/grpc/) ---
/** Default port of the gRPC listener (`--grpc-port`), beside the wire protocol's 9092. */
export const GRPC_PORT = 9093;
/** First buffer of a Subscribe stream's batch; it grows with the traffic. */
export const GRPC_BATCH_BYTES_MIN = 4 * 1024;
/** A batch is cut at this size: under grpc clients' default 4 MiB receive limit, with room. */
export const GRPC_BATCH_BYTES_MAX = 1024 * 1024;
/** Largest request message the gRPC listener reads (a PublishBatch): bounds one read's memory. */
export const GRPC_RECEIVE_BYTES_MAX = 4 * 1024 * 1024;
/** Default wait of a gRPC Request for its reply. */
export const GRPC_REQUEST_TIMEOUT_MS = 5_000;
/** Longest wait a gRPC Request may ask for (one hour). */
export const GRPC_REQUEST_TIMEOUT_MS_MAX = 3_600_000;
/** Requests waiting for a reply at once, over all gRPC calls (then `RESOURCE_EXHAUSTED` LIMIT). */
export const GRPC_REQUESTS_PENDING_MAX = 100_000;
/** Open Subscribe and PublishStream streams at once (then `RESOURCE_EXHAUSTED` LIMIT). */
export const GRPC_STREAMS_MAX = CONNECTIONS_MAX;
/** Publish acks a PublishStream may owe (stored publishes not yet confirmed) before it stops reading. */
export const GRPC_PUBLISH_ACKS_PENDING_MAX = 65_536;
/** How long a gRPC client has to answer the server's HTTP/2 PING before its connection is closed. */
export const GRPC_KEEPALIVE_TIMEOUT_MS = 20_000;

// --- Admin console (the dashboard, its API and its live stream) ---
/** Messages one peek returns at most: a look at the head of a queue, not an export. */
export const PEEK_MESSAGES_MAX = 100;
/** Body bytes a peek shows of each message, so a peek of large messages stays small. */
export const PEEK_PREVIEW_BYTES_MAX = 1024;
/** Dead letters one replay moves at most, so one request never stalls the event loop for long. */
export const REPLAY_MESSAGES_MAX = 100_000;
/** Clients of the live stats stream (`/api/stream`) at once; one more is answered 503. */
export const STREAM_CLIENTS_MAX = 32;
/**
 * Largest buffer a connection reads its socket into (Bun's reads of a bulk
 * sender's socket; Deno's `Conn.read` stops at `CONN_READ_DENO_BYTES_MAX`): a
 * bulk publisher's reads cost a syscall, a promise and a parser round each,
 * and the frame split at each chunk's end takes the slow path and a copy. 256
 * KiB against 64 used 1.30x less CPU per 4 KiB publish and 1.22x per 16 B one;
 * 512 KiB against 256, on the Bun broker, 1.6x less at 4 KiB, 1.5x at 256 B
 * and 1.08x at 16 B (medians of 5-6 interleaved runs, bench/README.md, branch
 * `pub4k`). Only a connection whose reads fill the buffer grows it (and one
 * that keeps them above a sixteenth of it keeps it, `ReadBuffer`).
 */
export const CONN_READ_BYTES_MAX = 512 * 1024;
/**
 * Largest read buffer on Deno: 512 KiB was within noise at 4 KiB and 256 B and
 * 1.12x more CPU per 16 B publish than 256 KiB (the parser walks every byte of
 * a read, and the run offsets of a chunk of 16 B PUBs grow with it).
 */
export const CONN_READ_DENO_BYTES_MAX = 256 * 1024;
/**
 * Read buffers of `CONN_READ_BYTES_MAX` the Bun broker keeps for whichever
 * bulk sender's socket it reads next (`ReadBufferPool`): a connection gives
 * its buffer back each time its socket runs dry, so a connection that sent
 * bulk once holds none while it is quiet (it held up to 512 KiB until it
 * closed). One thread reads one socket at a time, so a few cover many bulk
 * senders taking turns; at most 2 MiB held for none. The Deno broker keeps as
 * many of `CONN_READ_DENO_BYTES_MAX` (see `CONN_READ_QUIET_BYTES_MAX`).
 */
export const CONN_READ_POOL_BUFFERS_MAX = 4;
/**
 * Largest read buffer a Deno broker connection keeps waiting in a read of its
 * own: a bigger one is the pool's `CONN_READ_DENO_BYTES_MAX`, and once a read
 * into it leaves the socket dry it goes back to the pool (`ReadBuffer`'s quiet
 * rule), so a connection that sent bulk and went quiet holds at most this
 * while it waits (its pending read pinned up to 256 KiB).
 */
export const CONN_READ_QUIET_BYTES_MAX = 16 * 1024;
/**
 * Smallest read buffer: what an idle connection's pending read holds on Deno
 * (the runtime pins it until bytes come). 256 B takes a CONNECT, a SUB and a
 * PING in one read; 1 KiB was 7.5 MiB of 10,000 idle connections' memory.
 */
export const CONN_READ_BYTES_MIN = 256;
/** How often the live stats stream pushes a delta. */
export const STREAM_INTERVAL_MS = 1_000;
/** Rows one list request of the console (`/api/queues` ...) returns at most. */
export const CONSOLE_ROWS_MAX = 1_000;

// --- WebSocket transport (src/websocket/; the client imports these too) ---

/**
 * Largest WebSocket message either side sends: a bigger write goes out as
 * several messages (frames may span messages), so no peer has to take one
 * huge message whole.
 */
export const WS_SEND_BYTES_MAX = 1024 * 1024;
/**
 * Least size of a WebSocket message the broker takes (`2 × --max-payload` plus
 * a control line when that is more). The runtime buffers a whole message
 * before we see it, so this bounds that memory per connection; a PUB up to
 * twice over the payload limit still gets the protocol's `ERR
 * PAYLOAD_TOO_LARGE`, larger messages are closed with 1009.
 */
export const WS_MESSAGE_BYTES_MIN = WS_SEND_BYTES_MAX;
/**
 * A write resolves once the socket buffers fewer bytes than this, so the
 * slow-consumer logic sees a stalled reader (its outbound buffer fills behind
 * the waiting write). A standard WebSocket says nothing when its buffer
 * drains, so a waiting write looks again by timer: the mark is high enough
 * that a reader that is only briefly behind still has plenty to read while we
 * look. It bounds what the runtime holds for a reader that stopped, on top
 * of `PENDING_BYTES_MAX`.
 */
export const WS_BUFFERED_BYTES_HIGH = 16 * 1024 * 1024;
/**
 * Longest pause between two looks at a backed-up socket's `bufferedAmount` (a
 * standard WebSocket has no drain event). The first look is after 0 ms (the
 * next turn of the event loop, where the runtime's pending writes progress),
 * then 1, 2, 4 ... up to this.
 */
export const WS_DRAIN_POLL_MS_MAX = 8;
/**
 * Inbound bytes waiting for a reader that has paused (`--slow-consumer
 * block`): a WebSocket cannot stop its peer as TCP can, so past this (or
 * past one message of the largest size, when that is more) the connection
 * closes with a read error instead of buffering without bound.
 */
export const WS_INBOUND_BYTES_MAX = 16 * 1024 * 1024;
// Clustering (src/cluster/, docs/CLUSTERING.md).
/** Default lifetime of a node's etcd lease: a SIGKILLed node's membership and leaderships lapse within it. */
export const CLUSTER_LEASE_TTL_S = 5;
/** Time one etcd request may take before it counts as failed (the node then retries, etcd being down). */
export const CLUSTER_ETCD_REQUEST_MS = 2_000;
/** How often a node looks for queues it holds that have no leader, and claims them. */
export const CLUSTER_CLAIM_INTERVAL_MS = 500;
/** Leadership claims per sweep: a node holding very many queues claims them over several sweeps. */
export const CLUSTER_CLAIMS_PER_SWEEP_MAX = 64;
/** Queue leaderships the cluster map holds (members and leaders as watched in etcd). */
export const CLUSTER_LEADERS_MAX = 100_000;
/** Cluster members a node tracks. */
export const CLUSTER_MEMBERS_MAX = 64;
/** Longest line of etcd's watch stream kept while waiting for its end (a watch response). */
export const CLUSTER_WATCH_LINE_BYTES_MAX = 4 * 1024 * 1024;
/** Longest wait between two tries at reaching etcd again after it failed. */
export const CLUSTER_RETRY_MS_MAX = 1_000;
/** Longest control line on the inter-node link (`SUB <pattern>`, `MSG <topic> ...`): a name and two sizes. */
export const CLUSTER_LINK_LINE_BYTES_MAX = 4 * 1024;
/** Largest frame body (options and payload) on the inter-node link: a payload at the largest `--max-payload`, plus options. */
export const CLUSTER_LINK_FRAME_BYTES_MAX = 64 * 1024 * 1024 + 64 * 1024;
/** Bytes waiting to be written to one peer; past it the link is cut (a stalled peer must not hold our memory) and dialled again. */
export const CLUSTER_LINK_PENDING_BYTES_MAX = 64 * 1024 * 1024;
/** Subscription patterns one peer may tell us of. */
export const CLUSTER_PEER_PATTERNS_MAX = 100_000;
/** Topic names whose answer (does this peer want it?) is cached per peer; past it the cache starts over. */
export const CLUSTER_PEER_TOPIC_CACHE_MAX = 10_000;
/** Wait before dialling a peer again after a failed dial or a cut link. */
export const CLUSTER_LINK_REDIAL_MS = 200;

// --- cluster: forwarding queue commands to their leader (src/cluster/forward.ts) ---

/** Commands a client connection may have waiting for one leader's answer (over it: ERR LIMIT). */
export const CLUSTER_PROXY_PENDING_MAX = 65_536;
/** Bytes waiting to be written to one upstream proxy connection (over it: the upstream is cut). */
export const CLUSTER_PROXY_PENDING_BYTES_MAX = 64 * 1024 * 1024;
/**
 * Bound copies (cluster bindings, src/cluster/bindings.ts) waiting for one leader node's answer;
 * over it a topic publish that would add one is refused `ERR LIMIT` before anything is done.
 */
export const CLUSTER_BIND_PENDING_MAX = 65_536;
/** Upstream proxy connections one client connection may have open (one per leader node). */
export const CLUSTER_PROXY_UPSTREAMS_MAX = CLUSTER_MEMBERS_MAX;
/** Destinations whose route one connection remembers (then it starts over). */
export const CLUSTER_PROXY_ROUTES_MAX = 4_096;
/** How long a subscription whose leader went waits for a new one before it is given up. */
export const CLUSTER_RESUBSCRIBE_MS_MAX = 60_000;
/** Time between tries to re-make such a subscription at the queue's new leader. */
export const CLUSTER_RESUBSCRIBE_RETRY_MS = 250;
/** Bytes of the first line a cluster-port connection must send (`HELLO`/`PROXY <node-id>`). */
export const CLUSTER_FIRST_LINE_BYTES_MAX = 128;
/**
 * Cluster-port connections that have not yet sent their first line (or finished the handshake) at
 * once; more are closed as they come, so connections that never speak cannot hold the port.
 */
export const CLUSTER_INBOUND_PENDING_MAX = 64;
/** Time a cluster-port connection has to send its first line (after the handshake, if any). */
export const CLUSTER_FIRST_LINE_TIMEOUT_MS = 5_000;

// Authentication of the inter-node link (src/cluster/link_auth.ts, docs/CLUSTERING.md).
/** Fewest bytes of a cluster secret: 256 bits, so it cannot be guessed. */
export const CLUSTER_SECRET_BYTES_MIN = 32;
/** Most bytes of a cluster secret file read at start-up (a wrong path to a big file fails fast). */
export const CLUSTER_SECRET_BYTES_MAX = 4 * 1024;
/** Bytes of a handshake line (`AUTH <node-id> <nonce> <mac>`: ~160 in practice). */
export const CLUSTER_AUTH_LINE_BYTES_MAX = 256;
/** Time a connection on either side has to finish the handshake before it is closed. */
export const CLUSTER_AUTH_TIMEOUT_MS = 5_000;
/** Random bytes of each handshake nonce. */
export const CLUSTER_AUTH_NONCE_BYTES = 32;
/** Peer addresses whose last refusal log time is kept (then the map starts over). */
export const CLUSTER_AUTH_LOG_PEERS_MAX = 1_024;
/** A refused peer address is logged at most once per this many ms. */
export const CLUSTER_AUTH_LOG_INTERVAL_MS = 1_000;

// TLS of the inter-node link (src/cluster/link_tls.ts, docs/CLUSTERING.md).
/** Time a connection on the cluster port has to finish its TLS handshake (as the HMAC handshake). */
export const CLUSTER_TLS_HANDSHAKE_TIMEOUT_MS = 5_000;
/** TLS handshakes in progress at once on the cluster port; more are closed and counted as failed. */
export const CLUSTER_TLS_HANDSHAKES_PENDING_MAX = 64;

// Replication of queues (src/cluster/replication.ts, docs/CLUSTERING.md).
/** Default `--replicas`: copies of each queue, the leader's included (fewer when the cluster has fewer nodes). */
export const CLUSTER_REPLICAS_DEFAULT = 3;
/** Longest a PUB's or ACK's reply waits for a majority of the queue's replicas; past it, `ERR UNAVAILABLE`. */
export const CLUSTER_COMMIT_MS_MAX = 5_000;
/** How often an admin action waits to see a queue it leads recovered (up to `CLUSTER_COMMIT_MS_MAX`). */
export const CLUSTER_ADMIN_POLL_MS = 20;
/** Longest a new leader waits for a majority of the replica set to answer its recovery before it tries again. */
export const CLUSTER_RECOVERY_MS_MAX = 3_000;
/** Longest control line of a replication connection (`PUB <queue> <epoch> <lsn> <bytes>`). */
export const CLUSTER_REPL_LINE_BYTES_MAX = 4 * 1024;
/** Largest replicated record: the largest message record of the log format. */
export const CLUSTER_REPL_FRAME_BYTES_MAX = 64 * 1024 * 1024 + 64 * 1024;
/** Bytes waiting to be written to one follower; past it the connection is cut and the follower gets a snapshot when it is back. */
export const CLUSTER_REPL_PENDING_BYTES_MAX = 64 * 1024 * 1024;
/** Commit batches (one per queue per tick) waiting for a majority, per queue; past it a PUB is answered `UNAVAILABLE`. */
export const CLUSTER_REPL_BATCHES_MAX = 100_000;
/** Messages a follower stages while a snapshot of one queue arrives (a queue at `--queue-max-messages` fits). */
export const CLUSTER_REPL_SNAPSHOT_MESSAGES_MAX = 10_000_000;
/** Bytes of a queue's replication state file (epoch, data epoch, lsn records) before it is rewritten. */
export const CLUSTER_REPL_STATE_FILE_BYTES_MAX = 64 * 1024;
/** Publishes held per queue while this node claims or recovers it (past it: `ERR UNAVAILABLE` at once). */
export const CLUSTER_HELD_MAX = 10_000;
/** Queues' replication state files kept open at once (the least recently saved one is closed past it). */
export const CLUSTER_REPL_STATE_FILES_OPEN_MAX = 1024;
/** How often replication checks commit deadlines, lost leaderships, replica sets and recoveries. */
export const CLUSTER_REPL_TICK_MS = 100;
