import { describe, expect, it } from "vitest";
import { HEADER_LEN, parseFrame } from "./frame";

// A message laid out as confer-frames writes it (its Rust tests check the same bytes).
function message(width: number, height: number, seq: number, stream = 0): ArrayBuffer {
  const planes = width * height * 1.5;
  const buffer = new ArrayBuffer(HEADER_LEN + planes);
  const view = new DataView(buffer);
  [0x43, 0x46, 0x56, 0x31].forEach((b, i) => view.setUint8(i, b));
  view.setUint8(4, stream);
  view.setUint32(8, width, true);
  view.setUint32(12, height, true);
  view.setUint32(16, seq, true);
  view.setBigUint64(24, 1_700_000_000_123_456n, true);
  new Uint8Array(buffer, HEADER_LEN, width * height).fill(99);
  new Uint8Array(buffer, HEADER_LEN + width * height).fill(128);
  return buffer;
}

describe("parseFrame", () => {
  it("reads the header and finds the planes", () => {
    const frame = parseFrame(message(4, 2, 7, 1));
    expect(frame.header).toEqual({
      stream: "local",
      width: 4,
      height: 2,
      seq: 7,
      captureUs: 1_700_000_000_123_456,
    });
    expect(Array.from(frame.y)).toEqual(new Array(8).fill(99));
    expect(frame.u.length).toBe(2);
    expect(frame.v.length).toBe(2);
  });

  it("names what is wrong", () => {
    expect(() => parseFrame(new ArrayBuffer(10))).toThrow("shorter than the header");
    const bad = message(4, 2, 1);
    new DataView(bad).setUint8(0, 0);
    expect(() => parseFrame(bad)).toThrow("wrong magic");
    expect(() => parseFrame(message(4, 2, 1).slice(0, HEADER_LEN + 11))).toThrow("11 bytes of planes");
  });
});
