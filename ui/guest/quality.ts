// The network-quality indicator, with the native app's thresholds (crates/call/src/quality.rs):
// the worst factor decides, and is named in plain words.

export type Level = "good" | "fair" | "poor";

export interface Quality {
  level: Level;
  reason: string;
}

/** One second of a call, from the browser's getStats. */
export interface Second {
  /** Of the packets expected in this second, the share lost, %. */
  lossPct: number;
  rttMs?: number;
  jitterMs: number;
  fpsReceived: number;
  /** Width of the last remote frame (0: none yet). */
  width: number;
  /** What the browser estimates it may send, kbit/s (0: unknown). */
  sendKbps: number;
}

const RANK: Record<Level, number> = { good: 0, fair: 1, poor: 2 };

/** The indicator for one second; `videoExpected` when the other side's camera is on. */
export function assess(s: Second, videoExpected: boolean): Quality {
  let worst: Quality = { level: "good", reason: "" };
  const consider = (level: Level, reason: string) => {
    if (RANK[level] > RANK[worst.level]) worst = { level, reason };
  };
  const band = (value: number, fair: number, poor: number, reason: string) => {
    if (value > poor) consider("poor", reason);
    else if (value > fair) consider("fair", reason);
  };
  band(s.lossPct, 3, 10, `${Math.round(s.lossPct)}% of packets lost`);
  if (s.rttMs !== undefined) {
    const rtt = Math.round(s.rttMs);
    if (s.rttMs > 500) consider("poor", `long delay (${rtt} ms round trip)`);
    else if (s.rttMs > 300) consider("fair", `some delay (${rtt} ms round trip)`);
  }
  band(s.jitterMs, 40, 100, `unsteady connection (${Math.round(s.jitterMs)} ms jitter)`);
  if (videoExpected && s.width > 0) {
    const fps = Math.round(s.fpsReceived);
    if (s.fpsReceived < 8) consider("poor", `video is choppy (${fps} frames/s)`);
    else if (s.fpsReceived < 20) consider("fair", `video is reduced (${fps} frames/s)`);
  }
  if (s.sendKbps > 0) {
    const kbps = Math.round(s.sendKbps);
    if (s.sendKbps < 150) consider("poor", `little bandwidth (${kbps} kbit/s)`);
    else if (s.sendKbps < 350) consider("fair", `limited bandwidth (${kbps} kbit/s)`);
  }
  return worst;
}

/** Cumulative counters read from getStats, to turn into a second. */
export interface Counters {
  packetsReceived: number;
  packetsLost: number;
  framesDecoded: number;
  atMs: number;
}

/** Loss and frame rate between two readings. */
export function between(prev: Counters, now: Counters): { lossPct: number; fps: number } {
  const received = Math.max(0, now.packetsReceived - prev.packetsReceived);
  const lost = Math.max(0, now.packetsLost - prev.packetsLost);
  const secs = Math.max(0.001, (now.atMs - prev.atMs) / 1000);
  return {
    lossPct: received + lost > 0 ? (100 * lost) / (received + lost) : 0,
    fps: Math.max(0, now.framesDecoded - prev.framesDecoded) / secs,
  };
}
