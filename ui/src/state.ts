// The call as the UI sees it: a pure reducer over the backend's events (see
// src-tauri/src/events.rs for their shapes) and the user's own actions.

export type Phase = "home" | "joining" | "lobby" | "waiting" | "connecting" | "in-call" | "ended";

export interface Quality {
  level: "good" | "fair" | "poor";
  reason: string;
}

export interface CallStats {
  rtt_ms: number | null;
  loss_pct: number;
  send_loss_pct: number | null;
  jitter_ms: number;
  send_kbps: number;
  recv_kbps: number;
  fps_received: number;
  fps_sent: number;
  width: number;
  height: number;
  freezes: number;
  path: string | null;
  codec_sent: string | null;
  codec_received: string | null;
  quality: Quality | null;
  [more: string]: unknown;
}

export interface DisplayStats {
  published: number;
  sent: number;
  drawn: number;
  replaced: number;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
}

export type BackendEvent =
  | { kind: "joined"; role: "host" | "guest"; state: "waiting" | "admitted"; resumed: boolean }
  | { kind: "knock"; peer: string; name: string | null }
  | { kind: "admitted" }
  | { kind: "call-ready" }
  | { kind: "connected" }
  | { kind: "verification-code"; code: string }
  | { kind: "reconnecting" }
  | { kind: "reconnected" }
  | { kind: "server-reconnecting"; attempt: number; reason: string }
  | { kind: "peer-reconnecting" }
  | { kind: "peer-resumed" }
  | { kind: "peer-left"; reason: string }
  | { kind: "peer-media"; muted: boolean; camera: boolean }
  | { kind: "peer-hung-up"; reason: string }
  | { kind: "chat"; id: string; text: string }
  | { kind: "chat-delivered"; id: string }
  | { kind: "transfer-progress"; id: number; incoming: boolean; done: number; total: number }
  | { kind: "file-received"; id: number; name: string; size: number; verified: boolean }
  | { kind: "transfer-done"; id: number; verified: boolean }
  | { kind: "transfer-cancelled"; id: number; reason: string }
  | {
      kind: "stats";
      call: CallStats;
      remote_display: DisplayStats;
      local_display: DisplayStats;
    }
  | { kind: "warning"; message: string }
  | { kind: "error"; message: string }
  | { kind: "ended"; reason: string };

export interface Knock {
  peer: string;
  name: string | null;
}

export interface ChatLine {
  id: string;
  text: string;
  mine: boolean;
  delivered: boolean;
}

export interface Transfer {
  id: number;
  name: string;
  incoming: boolean;
  done: number;
  total: number;
  state: "active" | "complete" | "cancelled";
  verified: boolean | null;
  note: string | null;
  savedTo: string | null;
}

export interface CallView {
  phase: Phase;
  role: "host" | "guest" | null;
  inviteLink: string | null;
  knocks: Knock[];
  sas: string | null;
  peerPresent: boolean;
  peerMuted: boolean;
  peerCamera: boolean;
  /** Media stopped arriving; the path is being found again. */
  reconnecting: boolean;
  serverReconnecting: boolean;
  peerReconnecting: boolean;
  muted: boolean;
  camera: boolean;
  chat: ChatLine[];
  /** Receipts that came before the command that sent their message returned. */
  earlyReceipts: string[];
  unread: number;
  chatOpen: boolean;
  transfers: Transfer[];
  stats: CallStats | null;
  display: { remote: DisplayStats; local: DisplayStats } | null;
  connectedAt: number | null;
  endedAt: number | null;
  endReason: string | null;
  /** The other person hung up (their reason): the call ends here too. */
  peerHungUp: string | null;
  /** The newest problem worth showing (warning or error), cleared when it no longer applies. */
  notice: { level: "warning" | "error"; text: string } | null;
}

export function initial(): CallView {
  return {
    phase: "home",
    role: null,
    inviteLink: null,
    knocks: [],
    sas: null,
    peerPresent: false,
    peerMuted: false,
    peerCamera: true,
    reconnecting: false,
    serverReconnecting: false,
    peerReconnecting: false,
    muted: false,
    camera: true,
    chat: [],
    earlyReceipts: [],
    unread: 0,
    chatOpen: false,
    transfers: [],
    stats: null,
    display: null,
    connectedAt: null,
    endedAt: null,
    endReason: null,
    peerHungUp: null,
    notice: null,
  };
}

function updateTransfer(view: CallView, id: number, change: Partial<Transfer>, name = ""): CallView {
  const existing = view.transfers.find((t) => t.id === id);
  const base: Transfer = existing ?? {
    id,
    name,
    incoming: false,
    done: 0,
    total: 0,
    state: "active",
    verified: null,
    note: null,
    savedTo: null,
  };
  const next = { ...base, ...change };
  return {
    ...view,
    transfers: existing
      ? view.transfers.map((t) => (t.id === id ? next : t))
      : [...view.transfers, next],
  };
}

/** The view after a backend event at time `now` (ms). */
export function reduce(view: CallView, event: BackendEvent, now: number): CallView {
  if (view.phase === "ended" && event.kind !== "ended") return view;
  switch (event.kind) {
    case "joined": {
      let phase = view.phase;
      if (event.state === "waiting") phase = "waiting";
      else if (phase === "joining" || phase === "waiting") phase = event.role === "host" ? "lobby" : "connecting";
      return { ...view, role: event.role, phase, serverReconnecting: false };
    }
    case "knock":
      if (view.knocks.some((k) => k.peer === event.peer)) return view;
      return { ...view, knocks: [...view.knocks, { peer: event.peer, name: event.name }] };
    case "admitted":
      return { ...view, phase: "connecting" };
    case "call-ready":
      return {
        ...view,
        peerPresent: true,
        knocks: [],
        phase: view.phase === "in-call" ? "in-call" : "connecting",
      };
    case "connected":
      return {
        ...view,
        phase: "in-call",
        peerPresent: true,
        connectedAt: view.connectedAt ?? now,
        reconnecting: false,
      };
    case "verification-code":
      return { ...view, sas: event.code };
    case "reconnecting":
      return { ...view, reconnecting: true };
    case "reconnected":
      return { ...view, reconnecting: false };
    case "server-reconnecting":
      return { ...view, serverReconnecting: true };
    case "peer-reconnecting":
      return { ...view, peerReconnecting: true };
    case "peer-resumed":
      return { ...view, peerReconnecting: false };
    case "peer-left":
      return {
        ...view,
        peerPresent: false,
        peerReconnecting: false,
        notice: { level: "warning", text: `The other person ${event.reason}.` },
        phase: view.role === "host" ? "lobby" : view.phase,
        sas: null,
      };
    case "peer-media":
      return { ...view, peerMuted: event.muted, peerCamera: event.camera };
    case "peer-hung-up":
      return { ...view, peerHungUp: event.reason };
    case "chat":
      return {
        ...view,
        chat: [...view.chat, { id: event.id, text: event.text, mine: false, delivered: true }],
        unread: view.chatOpen ? 0 : view.unread + 1,
      };
    case "chat-delivered":
      if (!view.chat.some((line) => line.mine && line.id === event.id)) {
        return { ...view, earlyReceipts: [...view.earlyReceipts, event.id] };
      }
      return {
        ...view,
        chat: view.chat.map((line) => (line.mine && line.id === event.id ? { ...line, delivered: true } : line)),
      };
    case "transfer-progress":
      return updateTransfer(view, event.id, { incoming: event.incoming, done: event.done, total: event.total });
    case "file-received":
      return updateTransfer(
        view,
        event.id,
        {
          incoming: true,
          done: event.size,
          total: event.size,
          state: "complete",
          verified: event.verified,
          name: event.name,
        },
        event.name,
      );
    case "transfer-done":
      return updateTransfer(view, event.id, { state: "complete", verified: event.verified });
    case "transfer-cancelled":
      return updateTransfer(view, event.id, { state: "cancelled", note: event.reason });
    case "stats":
      return { ...view, stats: event.call, display: { remote: event.remote_display, local: event.local_display } };
    case "warning":
      return { ...view, notice: { level: "warning", text: event.message } };
    case "error":
      return { ...view, notice: { level: "error", text: event.message } };
    case "ended":
      if (view.phase === "ended") return view;
      return {
        ...view,
        phase: "ended",
        endReason: view.peerHungUp !== null ? "The other person hung up." : event.reason,
        endedAt: now,
        reconnecting: false,
      };
  }
}

// The user's own actions.

export function starting(view: CallView): CallView {
  return { ...initial(), phase: "joining", muted: view.muted, camera: view.camera };
}

export function hosted(view: CallView, inviteLink: string): CallView {
  return { ...view, inviteLink, role: "host", phase: view.phase === "joining" ? "lobby" : view.phase };
}

export function failed(reason: string): CallView {
  return { ...initial(), notice: { level: "error", text: reason } };
}

export function answeredKnock(view: CallView, peer: string): CallView {
  return { ...view, knocks: view.knocks.filter((k) => k.peer !== peer) };
}

export function sentChat(view: CallView, id: string, text: string): CallView {
  const delivered = view.earlyReceipts.includes(id);
  return {
    ...view,
    chat: [...view.chat, { id, text, mine: true, delivered }],
    earlyReceipts: view.earlyReceipts.filter((r) => r !== id),
  };
}

export function sendingFile(view: CallView, id: number, name: string, size: number): CallView {
  return updateTransfer(view, id, { name, incoming: false, total: size }, name);
}

export function savedFile(view: CallView, id: number, path: string): CallView {
  return updateTransfer(view, id, { savedTo: path });
}

export function toggledChat(view: CallView, open: boolean): CallView {
  return { ...view, chatOpen: open, unread: open ? 0 : view.unread };
}

/** "mm:ss" or "h:mm:ss" since `since`. */
export function clock(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const two = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${two(m)}:${two(s)}`;
}

/** The banner to show, most urgent first; null when all is well. */
export function banner(view: CallView): { level: "warning" | "error"; text: string } | null {
  if (view.phase === "ended" || view.phase === "home") return view.notice?.level === "error" ? view.notice : null;
  if (view.serverReconnecting && view.reconnecting) {
    return { level: "error", text: "Connection lost. Reconnecting…" };
  }
  if (view.reconnecting) return { level: "warning", text: "Reconnecting… the call will resume by itself." };
  if (view.peerReconnecting) return { level: "warning", text: "The other person's connection dropped. Waiting for them…" };
  if (view.serverReconnecting) {
    return { level: "warning", text: "The server is unreachable; the call goes on and it reconnects in the background." };
  }
  return view.notice;
}

/** Who can use an invite link, in plain words: a link to this computer works only here; a
 * plain-http one on the network works from the Confer app but not from a browser, which
 * gives camera and microphone only to secure (https) pages; an https one naming a
 * certificate this computer made (`&cert=`) works from both, the browser after its warning. */
export function inviteNote(link: string | null): string {
  if (!link) return "";
  let url: URL;
  try {
    url = new URL(link.replace(/^confer\+http:/, "http:").replace(/^confer:/, "https:"));
  } catch {
    return "";
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (host === "localhost" || host === "::1" || host.startsWith("127.")) {
    return "This link works on this computer only. To call someone elsewhere, turn on hosting for the local network in Settings, or use a server of your own.";
  }
  if (url.protocol === "http:") {
    return "Anyone on this network can join with the Confer app. A browser needs a secure (https) server: for a guest joining from a browser, use a server of your own.";
  }
  if (/[#&]cert=/.test(url.hash)) {
    return "Anyone on this network can join, with the Confer app or a browser. This computer made its own certificate, so a browser first warns that the connection is not private: the guest continues past the warning (Advanced, then Proceed). On a network you do not trust, use a server of your own.";
  }
  return "";
}

/** What the backend's look at the server found (`check_server`). */
export interface ServerCheck {
  /** The server's base URL. */
  server: string;
  /** How long its answer took, connection and TLS included. */
  ms: number;
}

/** The pre-call check's line about the server, in words: `null` while it is asked, the answer,
 * or why it could not be reached. `forLink`: the server of the link in the join field, not
 * the one a hosted call would use. */
export function serverCheckLine(
  result: { ok: ServerCheck } | { error: string } | null,
  forLink: boolean,
): { level: "pending" | "ok" | "error"; text: string } {
  const whose = forLink ? "The link's server" : "The server";
  if (result === null) return { level: "pending", text: `Checking the connection to ${forLink ? "the link's server" : "the server"}…` };
  if ("error" in result) return { level: "error", text: `${whose} cannot be reached: ${result.error}` };
  const ms = Math.max(1, Math.round(result.ok.ms));
  const slow = ms > 1000 ? " That is slow: the call may take a while to connect." : "";
  return { level: "ok", text: `${whose} answered in ${ms} ms.${slow}` };
}
