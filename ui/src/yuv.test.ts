import { describe, expect, it } from "vitest";
import { i420ToRgba } from "./yuv";

/** A 2x2 I420 frame of one colour, converted. */
function pixel(y: number, u: number, v: number): number[] {
  const out = new Uint8ClampedArray(16);
  i420ToRgba(new Uint8Array(4).fill(y), new Uint8Array([u]), new Uint8Array([v]), 2, 2, out);
  for (let i = 4; i < 16; i += 4) expect([...out.slice(i, i + 4)]).toEqual([...out.slice(0, 4)]);
  return [...out.slice(0, 4)];
}

describe("i420ToRgba (BT.601 limited range)", () => {
  it("maps the range ends to black and white", () => {
    expect(pixel(16, 128, 128)).toEqual([0, 0, 0, 255]);
    expect(pixel(235, 128, 128)).toEqual([255, 255, 255, 255]);
    // Below black and above white clamp rather than wrap.
    expect(pixel(0, 128, 128)).toEqual([0, 0, 0, 255]);
    expect(pixel(255, 128, 128)).toEqual([255, 255, 255, 255]);
  });

  it("gives the primaries", () => {
    // BT.601 limited-range codes of pure red, green and blue.
    const near = (got: number[], want: number[]) =>
      got.forEach((c, i) => expect(Math.abs(c - want[i]), `${got} vs ${want}`).toBeLessThanOrEqual(2));
    near(pixel(81, 90, 240), [255, 0, 0, 255]);
    near(pixel(145, 54, 34), [0, 255, 0, 255]);
    near(pixel(41, 240, 110), [0, 0, 255, 255]);
  });

  it("shares each chroma sample among its 2x2 block, row by row", () => {
    // 4x2: left block grey, right block red-ish; luma differs per pixel.
    const y = new Uint8Array([16, 235, 81, 81, 235, 16, 81, 81]);
    const out = new Uint8ClampedArray(4 * 2 * 4);
    i420ToRgba(y, new Uint8Array([128, 90]), new Uint8Array([128, 240]), 4, 2, out);
    const at = (i: number) => [...out.slice(i * 4, i * 4 + 3)];
    expect(at(0)).toEqual([0, 0, 0]);
    expect(at(1)).toEqual([255, 255, 255]);
    expect(at(4)).toEqual([255, 255, 255]);
    expect(at(5)).toEqual([0, 0, 0]);
    for (const i of [2, 3, 6, 7]) expect(at(i)[0]).toBeGreaterThan(250);
  });

  it("refuses an output of the wrong size", () => {
    expect(() =>
      i420ToRgba(new Uint8Array(4), new Uint8Array(1), new Uint8Array(1), 2, 2, new Uint8ClampedArray(15)),
    ).toThrow(/width × height × 4/);
  });
});
