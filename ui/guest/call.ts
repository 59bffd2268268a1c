// One guest's call: the signaling socket (docs/protocol.md, with resume after a drop), the
// browser's RTCPeerConnection speaking the same offer/answer/candidate payloads as the native
// app, the "confer" data channel (chat, receipts, media state, files), the verification code,
// ICE restart, and a quality reading every second. The page (main.ts) only renders events.

import type { IceServer, ServerMessage } from "../../crates/protocol/bindings/protocol";
import {
  CHUNK,
  chunkFrame,
  type DataMessage,
  HIGH_WATER,
  Incoming,
  MAX_CHAT_CHARS,
  parseChunk,
  parseMessage,
  refusal,
  sha256Hex,
} from "./data";
import { assess, between, type Counters, type Quality } from "./quality";
import { sasFromSdp } from "./sas";

export type CallEvent =
  | { type: "waiting" }
  | { type: "admitted" }
  | { type: "connected"; sas: string | null }
  | { type: "reconnecting"; reason: string }
  | { type: "reconnected" }
  | { type: "remote-stream"; stream: MediaStream }
  | { type: "peer-media"; muted: boolean; camera: boolean }
  | { type: "chat"; id: string; text: string }
  | { type: "receipt"; id: string }
  | { type: "file-incoming"; id: number; name: string; size: number }
  | { type: "file-progress"; id: number; bytes: number; size: number }
  | { type: "file-received"; id: number; name: string; blob: Blob; ok: boolean }
  | { type: "file-sent"; id: number; ok: boolean }
  | { type: "file-cancelled"; id: number; reason: string }
  | { type: "quality"; quality: Quality; stats: CallStats }
  | { type: "warning"; message: string }
  | { type: "ended"; reason: string };

/** One second of the call, for the stats panel and for tests. */
export interface CallStats {
  rttMs?: number;
  lossPct: number;
  jitterMs: number;
  fpsReceived: number;
  width: number;
  height: number;
  framesDecoded: number;
  audioPacketsReceived: number;
  sendKbps: number;
  recvKbps: number;
  codecReceived?: string;
  codecSent?: string;
  path?: string;
}

export interface CallOptions {
  /** The signaling socket, `ws(s)://host/v1/ws`. */
  url: string;
  token: string;
  name: string;
  media: MediaStream;
  /** A video codec to offer first (`VP8`, `H264`); the browser's own order otherwise. */
  preferCodec?: string;
  onEvent: (e: CallEvent) => void;
}

/** How long the media path may be down before the offering side restarts ICE. */
const RESTART_AFTER_MS = 2000;
/** Then how often it restarts again while the path stays down (as the native app). */
const RESTART_EVERY_MS = 1500;

/** Messages of the server that end the call, in words for the guest. */
const FATAL: Partial<Record<string, string>> = {
  unauthorized: "This invitation is not valid on this server. Ask for a new link.",
  "token-expired": "This invitation has expired. Ask the person who invited you for a new link.",
  "room-full": "This call is full right now. Try again in a moment.",
  "unsupported-version": "This page is out of date for the server. Reload the page.",
};

type Offer = Extract<DataMessage, { t: "file-offer" }>;

interface Outgoing {
  cancelled: boolean;
  done: (ok: boolean) => void;
}

export class GuestCall {
  private ws?: WebSocket;
  private pc?: RTCPeerConnection;
  private channel?: RTCDataChannel;
  private iceServers: IceServer[] = [];
  private resume?: string;
  private lastSeq?: number;
  private graceMs = 30_000;
  private initiator = false;
  private ended = false;
  private socketDownSince?: number;
  private pathDownSince?: number;
  private restartTimer?: number;
  private statsTimer?: number;
  private queue: Promise<void> = Promise.resolve();
  private early: RTCIceCandidateInit[] = [];
  private incoming = new Map<number, Incoming>();
  private outgoing = new Map<number, Outgoing>();
  private prev?: Counters & { bytesSent: number; bytesReceived: number };
  private peerCamera = true;
  private muted = false;
  private camera = true;
  private connectedOnce = false;

  constructor(private readonly opts: CallOptions) {}

  /** Opens the socket and says hello; the server puts the guest in the waiting room. */
  start(): void {
    this.connect();
  }

  private emit(e: CallEvent): void {
    if (!this.ended || e.type === "ended") this.opts.onEvent(e);
  }

  private connect(): void {
    const ws = new WebSocket(this.opts.url);
    this.ws = ws;
    ws.onopen = () => {
      this.send({
        type: "hello",
        protocol: 1,
        token: this.opts.token,
        name: this.opts.name || undefined,
        resume: this.resume,
        last_seq: this.resume ? this.lastSeq : undefined,
      });
    };
    ws.onmessage = (e) => {
      let m: ServerMessage;
      try {
        m = JSON.parse(String(e.data));
      } catch {
        return;
      }
      this.onServer(m);
    };
    ws.onclose = () => {
      if (this.ws !== ws || this.ended) return;
      this.reconnectSocket();
    };
  }

  /** The socket dropped: take the seat back with `resume`, with back-off, within the grace period. */
  private reconnectSocket(): void {
    if (!this.resume) {
      this.end("The connection to the server was lost before joining. Check your connection and join again.");
      return;
    }
    const now = Date.now();
    this.socketDownSince ??= now;
    if (now - this.socketDownSince > this.graceMs) {
      this.end("The connection to the server was lost.");
      return;
    }
    this.emit({ type: "reconnecting", reason: "Reconnecting to the server…" });
    const attempt = Math.min(4000, 250 * 2 ** Math.floor((now - this.socketDownSince) / 1000));
    window.setTimeout(() => {
      if (!this.ended) this.connect();
    }, attempt);
  }

  private send(message: object): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private signal(payload: object): void {
    this.send({ type: "signal", payload });
  }

  private onServer(m: ServerMessage): void {
    if ("seq" in m && typeof m.seq === "number") this.lastSeq = m.seq;
    switch (m.type) {
      case "welcome":
        this.resume = m.resume;
        this.iceServers = m.ice_servers;
        this.graceMs = m.grace_s * 1000;
        if (this.socketDownSince !== undefined) {
          this.socketDownSince = undefined;
          if (m.resumed) this.emit({ type: "reconnected" });
        }
        if (!m.resumed) this.emit({ type: m.state === "admitted" ? "admitted" : "waiting" });
        break;
      case "admitted":
        this.emit({ type: "admitted" });
        break;
      case "denied":
        this.end(m.reason ? `The host did not let you in: ${m.reason}` : "The host did not let you in.");
        break;
      case "call-ready":
        this.initiator = m.initiator;
        this.queue = this.queue.then(() => this.startPeer()).catch((err) => this.fail(err));
        break;
      case "signal":
        this.queue = this.queue.then(() => this.onPayload(m.payload)).catch((err) => this.fail(err));
        break;
      case "peer-reconnecting":
        this.emit({ type: "reconnecting", reason: "The other person's connection dropped. Waiting for them…" });
        break;
      case "peer-resumed":
        this.emit({ type: "reconnected" });
        break;
      case "peer-left":
        this.end(m.reason === "timeout" ? "The other person's connection was lost." : "The other person left the call.");
        break;
      case "error": {
        const fatal = FATAL[m.code];
        if (fatal) this.end(fatal);
        else this.emit({ type: "warning", message: m.message });
        break;
      }
      case "bye":
        if (m.reason === "replaced") this.end("This call was opened again in another window.");
        // server-shutdown: the socket closes next and the seat is taken back with resume.
        break;
      default:
        break;
    }
  }

  private fail(err: unknown): void {
    this.emit({ type: "warning", message: `Call setup: ${err instanceof Error ? err.message : String(err)}` });
  }

  private async startPeer(): Promise<void> {
    this.closePeer();
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers.map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })),
    });
    this.pc = pc;
    this.early = [];
    for (const track of this.opts.media.getTracks()) {
      const sender = pc.addTrack(track, this.opts.media);
      const wanted = this.opts.preferCodec?.toLowerCase();
      if (track.kind === "video" && wanted && "setCodecPreferences" in RTCRtpTransceiver.prototype) {
        const transceiver = pc.getTransceivers().find((t) => t.sender === sender);
        const all = RTCRtpReceiver.getCapabilities("video")?.codecs ?? [];
        const first = all.filter((c) => c.mimeType.toLowerCase() === `video/${wanted}`);
        transceiver?.setCodecPreferences([...first, ...all.filter((c) => !first.includes(c))]);
      }
    }
    pc.ontrack = (e) => {
      const stream = e.streams[0] ?? new MediaStream([e.track]);
      this.emit({ type: "remote-stream", stream });
    };
    pc.onicecandidate = (e) => {
      if (e.candidate) this.signal({ type: "candidate", candidate: e.candidate.toJSON() });
    };
    pc.ondatachannel = (e) => {
      if (e.channel.label === "confer") this.useChannel(e.channel);
    };
    pc.onconnectionstatechange = () => this.onPathState(pc);
    if (this.initiator) {
      this.useChannel(pc.createDataChannel("confer"));
      await this.offer(false);
    }
    this.statsTimer = window.setInterval(() => void this.readStats(), 1000);
  }

  private async offer(iceRestart: boolean): Promise<void> {
    const pc = this.pc;
    if (!pc) return;
    const offer = await pc.createOffer({ iceRestart });
    await pc.setLocalDescription(offer);
    this.signal({ type: "offer", sdp: offer.sdp });
  }

  private async onPayload(payload: Record<string, unknown>): Promise<void> {
    const pc = this.pc;
    if (!pc) return;
    const type = payload.type;
    if ((type === "offer" || type === "answer") && typeof payload.sdp === "string") {
      await pc.setRemoteDescription({ type, sdp: payload.sdp });
      for (const c of this.early.splice(0)) await pc.addIceCandidate(c);
      if (type === "offer") {
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        this.signal({ type: "answer", sdp: answer.sdp });
      }
    } else if (type === "candidate" && typeof payload.candidate === "object" && payload.candidate) {
      const candidate = payload.candidate as RTCIceCandidateInit;
      if (pc.remoteDescription) await pc.addIceCandidate(candidate);
      else this.early.push(candidate);
    }
  }

  private async onPathState(pc: RTCPeerConnection): Promise<void> {
    if (pc !== this.pc) return;
    const state = pc.connectionState;
    if (state === "connected") {
      this.pathDownSince = undefined;
      window.clearTimeout(this.restartTimer);
      if (!this.connectedOnce) {
        this.connectedOnce = true;
        const sas = await sasFromSdp(pc.localDescription?.sdp ?? "", pc.remoteDescription?.sdp ?? "");
        this.emit({ type: "connected", sas });
      } else {
        this.emit({ type: "reconnected" });
      }
    } else if (state === "disconnected" || state === "failed") {
      if (this.pathDownSince === undefined) {
        this.pathDownSince = Date.now();
        this.emit({ type: "reconnecting", reason: "Connection lost. Reconnecting…" });
        // As the native app: after 2 s without a path, the side that offered restarts ICE,
        // and again every 1.5 s until the path is back.
        const retry = () => {
          if (this.pc !== pc || this.ended || pc.connectionState === "connected") return;
          if (this.initiator) void this.restartIce();
          this.restartTimer = window.setTimeout(retry, RESTART_EVERY_MS);
        };
        this.restartTimer = window.setTimeout(retry, RESTART_AFTER_MS);
      }
    }
  }

  /** Restarts ICE from this side: new credentials, candidates gathered again, a new offer. */
  async restartIce(): Promise<void> {
    this.queue = this.queue.then(() => this.offer(true)).catch((err) => this.fail(err));
    await this.queue;
  }

  private useChannel(channel: RTCDataChannel): void {
    this.channel = channel;
    channel.binaryType = "arraybuffer";
    channel.bufferedAmountLowThreshold = HIGH_WATER / 2;
    channel.onopen = () => this.sendData({ t: "media", muted: this.muted, camera: this.camera });
    channel.onmessage = (e) => {
      if (typeof e.data === "string") void this.onData(e.data);
      else if (e.data instanceof ArrayBuffer) this.onChunk(e.data);
    };
  }

  private sendData(m: DataMessage): boolean {
    if (this.channel?.readyState !== "open") return false;
    this.channel.send(JSON.stringify(m));
    return true;
  }

  private async onData(text: string): Promise<void> {
    const m = parseMessage(text);
    if (!m) return;
    switch (m.t) {
      case "chat":
        this.sendData({ t: "receipt", id: m.id });
        this.emit({ type: "chat", id: m.id, text: m.text.slice(0, MAX_CHAT_CHARS) });
        break;
      case "receipt":
        this.emit({ type: "receipt", id: m.id });
        break;
      case "media":
        this.peerCamera = m.camera;
        this.emit({ type: "peer-media", muted: m.muted, camera: m.camera });
        break;
      case "bye":
        this.end("The other person hung up.");
        break;
      case "file-offer":
        this.onOffer(m);
        break;
      case "file-cancel":
        this.incoming.delete(m.id);
        this.outgoing.get(m.id)?.done(false);
        this.emit({ type: "file-cancelled", id: m.id, reason: m.reason });
        break;
      case "file-result":
        this.outgoing.get(m.id)?.done(m.ok);
        break;
    }
  }

  private onOffer(offer: Offer): void {
    const refused = refusal(offer);
    if (refused) {
      this.sendData({ t: "file-cancel", id: offer.id, reason: refused });
      this.emit({ type: "file-cancelled", id: offer.id, reason: refused });
      return;
    }
    this.incoming.set(offer.id, new Incoming(offer));
    this.emit({ type: "file-incoming", id: offer.id, name: offer.name, size: offer.size });
    if (offer.size === 0) void this.completeIncoming(offer.id);
  }

  private onChunk(frame: ArrayBuffer): void {
    const chunk = parseChunk(frame);
    const file = chunk && this.incoming.get(chunk.id);
    if (!chunk || !file) return;
    const problem = file.add(chunk.data);
    if (problem) {
      this.incoming.delete(chunk.id);
      this.sendData({ t: "file-cancel", id: chunk.id, reason: problem });
      this.emit({ type: "file-cancelled", id: chunk.id, reason: problem });
      return;
    }
    this.emit({ type: "file-progress", id: chunk.id, bytes: file.received, size: file.offer.size });
    if (file.complete) void this.completeIncoming(chunk.id);
  }

  private async completeIncoming(id: number): Promise<void> {
    const file = this.incoming.get(id);
    if (!file) return;
    this.incoming.delete(id);
    const { blob, ok } = await file.finish();
    this.sendData({ t: "file-result", id, ok });
    this.emit({ type: "file-received", id, name: file.offer.name, blob, ok });
  }

  /** Sends a chat message; its id, to match the receipt. */
  sendChat(text: string): string | null {
    const trimmed = text.trim();
    if (!trimmed || trimmed.length > MAX_CHAT_CHARS) return null;
    const id = crypto.randomUUID();
    return this.sendData({ t: "chat", id, text: trimmed }) ? id : null;
  }

  /** Sends a file: the offer, then chunks with back-pressure; resolves when the other side has checked it. */
  async sendFile(file: File, id = Math.floor(Math.random() * 2 ** 52)): Promise<boolean> {
    const channel = this.channel;
    if (channel?.readyState !== "open") return false;
    const data = new Uint8Array(await file.arrayBuffer());
    const sha256 = await sha256Hex(data);
    const result = new Promise<boolean>((resolve) => {
      this.outgoing.set(id, { cancelled: false, done: resolve });
    });
    const transfer = this.outgoing.get(id)!;
    this.sendData({ t: "file-offer", id, name: file.name, size: data.length, sha256 });
    for (let at = 0; at < data.length; at += CHUNK) {
      while (channel.bufferedAmount > HIGH_WATER && !transfer.cancelled && channel.readyState === "open") {
        await new Promise((r) => channel.addEventListener("bufferedamountlow", r, { once: true }));
      }
      if (transfer.cancelled || channel.readyState !== "open") break;
      channel.send(chunkFrame(id, data.subarray(at, at + CHUNK)));
      this.emit({ type: "file-progress", id, bytes: Math.min(data.length, at + CHUNK), size: data.length });
    }
    const ok = await result;
    this.outgoing.delete(id);
    this.emit({ type: "file-sent", id, ok });
    return ok;
  }

  /** Stops a transfer either way. */
  cancelFile(id: number): void {
    const out = this.outgoing.get(id);
    if (out) {
      out.cancelled = true;
      out.done(false);
    }
    this.incoming.delete(id);
    this.sendData({ t: "file-cancel", id, reason: "cancelled" });
    this.emit({ type: "file-cancelled", id, reason: "cancelled" });
  }

  setMuted(muted: boolean): void {
    this.muted = muted;
    for (const t of this.opts.media.getAudioTracks()) t.enabled = !muted;
    this.sendData({ t: "media", muted, camera: this.camera });
  }

  setCamera(on: boolean): void {
    this.camera = on;
    for (const t of this.opts.media.getVideoTracks()) t.enabled = on;
    this.sendData({ t: "media", muted: this.muted, camera: on });
  }

  /** Hangs up for both: says why on the data channel, then leaves the room (as the native
   * app: the bye gets up to 500 ms to leave before the server tells the other side). */
  hangUp(): void {
    const channel = this.channel;
    const sent = this.sendData({ t: "bye", reason: "hung up" });
    const ws = this.ws;
    const leave = () => {
      if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "leave" }));
    };
    this.end("You left the call.", () => {
      if (!sent || !channel || channel.bufferedAmount === 0) return leave();
      const deadline = Date.now() + 500;
      const wait = () => (channel.bufferedAmount === 0 || Date.now() > deadline ? leave() : window.setTimeout(wait, 10));
      wait();
    });
  }

  /** Ends the call here; `last` runs before the socket and the connection close. */
  private end(reason: string, last?: () => void): void {
    if (this.ended) return;
    this.ended = true;
    window.clearInterval(this.statsTimer);
    window.clearTimeout(this.restartTimer);
    for (const t of this.outgoing.values()) t.done(false);
    this.emit({ type: "ended", reason });
    last?.();
    // Let the last messages (bye, leave) go before closing.
    const ws = this.ws;
    window.setTimeout(() => {
      ws?.close();
      this.closePeer();
    }, 600);
  }

  private closePeer(): void {
    window.clearInterval(this.statsTimer);
    this.prev = undefined;
    this.channel?.close();
    this.pc?.close();
    this.pc = undefined;
    this.channel = undefined;
  }

  /** Reads the browser's stats for one second and the quality indicator from them. */
  async readStats(): Promise<CallStats | null> {
    const pc = this.pc;
    if (!pc) return null;
    const report = await pc.getStats();
    const codecs = new Map<string, string>();
    report.forEach((s) => {
      if (s.type === "codec") codecs.set(s.id, String(s.mimeType).replace(/^video\//, ""));
    });
    const now = { packetsReceived: 0, packetsLost: 0, framesDecoded: 0, atMs: performance.now(), bytesSent: 0, bytesReceived: 0 };
    const out: CallStats = { lossPct: 0, jitterMs: 0, fpsReceived: 0, width: 0, height: 0, framesDecoded: 0, audioPacketsReceived: 0, sendKbps: 0, recvKbps: 0 };
    let estimate = 0;
    const candidates = new Map<string, string>();
    report.forEach((s) => {
      if (s.type === "local-candidate") candidates.set(s.id, s.candidateType);
    });
    report.forEach((s) => {
      if (s.type === "inbound-rtp") {
        now.bytesReceived += s.bytesReceived ?? 0;
        now.packetsReceived += s.packetsReceived ?? 0;
        now.packetsLost += Math.max(0, s.packetsLost ?? 0);
        out.jitterMs = Math.max(out.jitterMs, (s.jitter ?? 0) * 1000);
        if (s.kind === "video") {
          now.framesDecoded = s.framesDecoded ?? 0;
          out.framesDecoded = now.framesDecoded;
          out.width = s.frameWidth ?? 0;
          out.height = s.frameHeight ?? 0;
          out.codecReceived = codecs.get(s.codecId);
        } else {
          out.audioPacketsReceived = s.packetsReceived ?? 0;
        }
      } else if (s.type === "outbound-rtp") {
        now.bytesSent += s.bytesSent ?? 0;
        if (s.kind === "video") out.codecSent = codecs.get(s.codecId);
      } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
        if (s.currentRoundTripTime !== undefined) out.rttMs = s.currentRoundTripTime * 1000;
        estimate = (s.availableOutgoingBitrate ?? 0) / 1000;
        const type = candidates.get(s.localCandidateId);
        out.path = type === "relay" ? "relay" : type ? "direct" : undefined;
      }
    });
    const prev = this.prev;
    this.prev = now;
    // The first reading only sets the baseline: rates need two.
    if (!prev) return null;
    const secs = Math.max(0.001, (now.atMs - prev.atMs) / 1000);
    const { lossPct, fps } = between(prev, now);
    out.lossPct = lossPct;
    out.fpsReceived = fps;
    out.sendKbps = ((now.bytesSent - prev.bytesSent) * 8) / 1000 / secs;
    out.recvKbps = ((now.bytesReceived - prev.bytesReceived) * 8) / 1000 / secs;
    const quality = assess(
      { lossPct, rttMs: out.rttMs, jitterMs: out.jitterMs, fpsReceived: fps, width: out.width, sendKbps: estimate },
      this.peerCamera,
    );
    this.emit({ type: "quality", quality, stats: out });
    return out;
  }
}
