// Generated from crates/protocol by `CONFER_BLESS=1 cargo test -p confer-protocol --test typescript`. Do not edit.

export const PROTOCOL_VERSION = 1;
export const MAX_FRAME_BYTES = 65536;
export type PeerId = string;

export type SignalPayload = Record<string, unknown>;

export type PingStamp = number;

export type Role = "host" | "guest";

export type ParticipantState = "waiting" | "admitted";

export type IceServer = { 
/**
 * `stun:`, `turn:` or `turns:` URLs.
 */
urls: Array<string>, 
/**
 * TURN username (coturn REST scheme: `expiry:peer`).
 */
username?: string, 
/**
 * TURN password.
 */
credential?: string, };

export type Hello = { 
/**
 * Must be [`PROTOCOL_VERSION`].
 */
protocol: number, 
/**
 * The room token (JWT, HS256) from the invite link or room creation.
 */
token: string, 
/**
 * The `resume` token of an earlier `welcome`, to take the same seat back.
 */
resume?: string, 
/**
 * With `resume`: the highest `seq` this client has processed. Events after it are
 * replayed. Without it, the server replays what it had not written to the old socket.
 */
last_seq?: number, 
/**
 * Display name; overrides the token's `name`.
 */
name?: string, };

export type ClientMessage = { "type": "hello" } & Hello | { "type": "admit", 
/**
 * The waiting guest (from `knock`).
 */
peer: string, } | { "type": "deny", 
/**
 * The waiting guest (from `knock`).
 */
peer: string, 
/**
 * Shown to the guest.
 */
reason?: string, } | { "type": "signal", 
/**
 * Offer, answer, candidate, end-of-candidates, restart, ...
 */
payload: SignalPayload, } | { "type": "leave" } | { "type": "ping", 
/**
 * Echoed back.
 */
t: PingStamp, };

export type LeaveReason = "left" | "timeout";

export type ByeReason = "server-shutdown" | "replaced";

export type ErrorCode = "bad-message" | "too-large" | "unauthorized" | "token-expired" | "room-full" | "not-allowed" | "rate-limited" | "unsupported-version" | "unknown-peer";

export type Welcome = { 
/**
 * This participant's id (the same after a resume).
 */
peer: string, 
/**
 * The room id from the token.
 */
room: string, 
/**
 * The role from the token.
 */
role: Role, 
/**
 * Secret for `hello.resume` within the grace period.
 */
resume: string, 
/**
 * STUN/TURN servers with short-lived credentials.
 */
ice_servers: Array<IceServer>, 
/**
 * Waiting in the lobby or admitted.
 */
state: ParticipantState, 
/**
 * True when `hello.resume` took an existing seat back; false for a new seat.
 */
resumed: boolean, 
/**
 * Seconds a dropped seat is held for `resume`.
 */
grace_s: number, };

export type ServerMessage = { "type": "welcome" } & Welcome | { "type": "knock", 
/**
 * The waiting guest.
 */
peer: string, 
/**
 * Its display name, if it gave one.
 */
name?: string, 
/**
 * Event sequence number.
 */
seq: number, } | { "type": "admitted", 
/**
 * Event sequence number.
 */
seq: number, } | { "type": "denied", 
/**
 * The host's reason, if any.
 */
reason?: string, } | { "type": "call-ready", 
/**
 * The other participant.
 */
peer: string, 
/**
 * Whether this participant sends the offer.
 */
initiator: boolean, 
/**
 * Event sequence number.
 */
seq: number, } | { "type": "signal", 
/**
 * The sender.
 */
from: string, 
/**
 * Unchanged payload.
 */
payload: SignalPayload, 
/**
 * Event sequence number.
 */
seq: number, } | { "type": "peer-reconnecting", 
/**
 * The participant whose socket dropped.
 */
peer: string, 
/**
 * Event sequence number.
 */
seq: number, } | { "type": "peer-resumed", 
/**
 * The participant that came back.
 */
peer: string, 
/**
 * Event sequence number.
 */
seq: number, } | { "type": "peer-left", 
/**
 * The participant that left.
 */
peer: string, 
/**
 * `left` or `timeout`.
 */
reason: LeaveReason, 
/**
 * Event sequence number.
 */
seq: number, } | { "type": "error", 
/**
 * Machine-readable code.
 */
code: ErrorCode, 
/**
 * Human-readable explanation.
 */
message: string, } | { "type": "pong", 
/**
 * Echo of `ping.t`.
 */
t: PingStamp, } | { "type": "bye", 
/**
 * Why.
 */
reason: ByeReason, };

export type CreateRoomRequest = { 
/**
 * Guests skip the lobby while a seat is free.
 */
auto_admit?: boolean, 
/**
 * Lifetime of the room's tokens in seconds (server default and maximum apply).
 */
ttl_s?: number, 
/**
 * Display name put in the host token.
 */
host_name?: string, 
/**
 * A line the guest must agree to before joining (shown with a checkbox by the browser
 * guest page; at most 500 characters), carried in the guest token.
 */
consent?: string, };

export type CreateRoomResponse = { 
/**
 * Room id.
 */
room: string, 
/**
 * Token for the host's `hello`.
 */
host_token: string, 
/**
 * Token for guests (carried by the invite link).
 */
guest_token: string, 
/**
 * Invite link: the browser guest page with the guest token.
 */
guest_url: string, 
/**
 * Unix seconds when the tokens expire.
 */
expires_at: number, };
