// The "confer" data channel, as the native app speaks it (docs/protocol.md, "The data
// channel"): JSON text messages tagged by `t`, and file chunks as binary messages (an 8-byte
// big-endian transfer id, then up to 16 KiB of the file).

export type DataMessage =
  | { t: "chat"; id: string; text: string }
  | { t: "receipt"; id: string }
  | { t: "media"; muted: boolean; camera: boolean }
  | { t: "bye"; reason: string }
  | { t: "file-offer"; id: number; name: string; size: number; sha256: string }
  | { t: "file-cancel"; id: number; reason: string }
  | { t: "file-result"; id: number; ok: boolean };

/** Longest chat message (characters), as the native app. */
export const MAX_CHAT_CHARS = 4000;
/** Bytes of file per chunk. */
export const CHUNK = 16 * 1024;
/** The sender waits while this much is queued in the channel. */
export const HIGH_WATER = 1024 * 1024;
/** Largest file accepted, as the native app's default. */
export const FILE_LIMIT = 100 * 1024 * 1024;

const TYPES = new Set(["chat", "receipt", "media", "bye", "file-offer", "file-cancel", "file-result"]);

/** A text message from the channel, or null when it is not one of ours. */
export function parseMessage(text: string): DataMessage | null {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof m !== "object" || m === null || !TYPES.has((m as { t?: string }).t ?? "")) return null;
  const msg = m as Record<string, unknown>;
  const str = (k: string) => typeof msg[k] === "string";
  const num = (k: string) => Number.isSafeInteger(msg[k]) && (msg[k] as number) >= 0;
  const bool = (k: string) => typeof msg[k] === "boolean";
  const ok: Record<string, boolean> = {
    chat: str("id") && str("text"),
    receipt: str("id"),
    media: bool("muted") && bool("camera"),
    bye: str("reason"),
    "file-offer": num("id") && str("name") && num("size") && str("sha256"),
    "file-cancel": num("id") && str("reason"),
    "file-result": num("id") && bool("ok"),
  };
  return ok[msg.t as string] ? (msg as DataMessage) : null;
}

/** A binary chunk of transfer `id`. */
export function chunkFrame(id: number, data: Uint8Array): Uint8Array {
  const frame = new Uint8Array(8 + data.length);
  new DataView(frame.buffer).setBigUint64(0, BigInt(id));
  frame.set(data, 8);
  return frame;
}

/** The transfer id and data of a binary chunk; null when it is too short. */
export function parseChunk(frame: ArrayBuffer): { id: number; data: Uint8Array } | null {
  if (frame.byteLength < 8) return null;
  const id = new DataView(frame).getBigUint64(0);
  if (id > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { id: Number(id), data: new Uint8Array(frame, 8) };
}

/** Hex SHA-256. */
export async function sha256Hex(data: BufferSource): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A file being received: its offer and the chunks so far. */
export class Incoming {
  readonly chunks: Uint8Array[] = [];
  received = 0;
  constructor(readonly offer: Extract<DataMessage, { t: "file-offer" }>) {}

  /** Adds a chunk; an error in words when the file grows past what was offered. */
  add(data: Uint8Array): string | null {
    if (this.received + data.length > this.offer.size) return "more data than the offer said";
    this.chunks.push(data.slice());
    this.received += data.length;
    return null;
  }

  get complete(): boolean {
    return this.received === this.offer.size;
  }

  /** The whole file, and whether its hash matches the offer's. */
  async finish(): Promise<{ blob: Blob; ok: boolean }> {
    const all = new Uint8Array(this.received);
    let at = 0;
    for (const c of this.chunks) {
      all.set(c, at);
      at += c.length;
    }
    const ok = (await sha256Hex(all)) === this.offer.sha256.toLowerCase();
    return { blob: new Blob([all]), ok };
  }
}

/** Why an offered file is refused, or null when it is accepted. */
export function refusal(offer: Extract<DataMessage, { t: "file-offer" }>, limit = FILE_LIMIT): string | null {
  return offer.size > limit ? `${offer.name} is ${offer.size} bytes, more than the ${limit} accepted` : null;
}

/** A name safe to offer for saving: no folders, no control characters, not empty. */
export function safeName(name: string): string {
  const base = name.split(/[/\\]/).pop() ?? "";
  // eslint-disable-next-line no-control-regex
  const clean = base.replace(/[\u0000-\u001f\u007f]/g, "").replace(/^\.+/, "").trim();
  return clean.slice(0, 200) || "file";
}
