import { describe, expect, it } from "vitest";
import { assess, between, type Second } from "./quality";

const clean: Second = { lossPct: 0, rttMs: 40, jitterMs: 3, fpsReceived: 30, width: 640, sendKbps: 1000 };

describe("network quality", () => {
  it("is good on a clean call, and names the worst factor otherwise", () => {
    expect(assess(clean, true)).toEqual({ level: "good", reason: "" });
    expect(assess({ ...clean, lossPct: 5 }, true)).toEqual({ level: "fair", reason: "5% of packets lost" });
    expect(assess({ ...clean, lossPct: 5, rttMs: 600 }, true)).toEqual({
      level: "poor",
      reason: "long delay (600 ms round trip)",
    });
    expect(assess({ ...clean, jitterMs: 50 }, true).reason).toBe("unsteady connection (50 ms jitter)");
    expect(assess({ ...clean, sendKbps: 100 }, true).level).toBe("poor");
  });

  it("does not blame the network for a camera turned off", () => {
    expect(assess({ ...clean, fpsReceived: 0 }, false).level).toBe("good");
    expect(assess({ ...clean, fpsReceived: 5 }, true).reason).toBe("video is choppy (5 frames/s)");
  });

  it("turns cumulative counters into one second", () => {
    const prev = { packetsReceived: 100, packetsLost: 0, framesDecoded: 10, atMs: 0 };
    const now = { packetsReceived: 190, packetsLost: 10, framesDecoded: 40, atMs: 1000 };
    expect(between(prev, now)).toEqual({ lossPct: 10, fps: 30 });
  });
});
