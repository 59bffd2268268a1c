// I420 to RGBA in JavaScript, for drawing video on a 2D canvas where WebGL would run on the
// CPU anyway (no GPU: Mesa's llvmpipe, which costs the web process about 31 MB of LLVM for
// the shader alone). BT.601 limited range, as the WebGL shader in video.ts, in 16.16 fixed
// point with the per-value products looked up from tables.

const FIX = 16;
const ONE = 1 << FIX;
const fixed = (x: number) => Math.round(x * ONE);

// Per byte value: the luma term, and the chroma terms of each channel.
const Y = new Int32Array(256);
const RV = new Int32Array(256);
const GU = new Int32Array(256);
const GV = new Int32Array(256);
const BU = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  Y[i] = fixed(1.1643 * (i - 16)) + ONE / 2; // + ONE/2 rounds
  RV[i] = fixed(1.5958 * (i - 128));
  GU[i] = fixed(-0.39173 * (i - 128));
  GV[i] = fixed(-0.8129 * (i - 128));
  BU[i] = fixed(2.017 * (i - 128));
}

const clamp = (x: number) => (x < 0 ? 0 : x > 255 * ONE ? 255 : x >> FIX);

// A little-endian machine (every one WebKitGTK runs on here) lays a pixel's bytes R, G, B, A
// in a Uint32 as 0xAABBGGRR.
const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Converts one I420 frame (`width` and `height` even) into `out`, `width * height * 4` bytes
 * of RGBA (an ImageData's `data`), opaque.
 */
export function i420ToRgba(
  y: Uint8Array,
  u: Uint8Array,
  v: Uint8Array,
  width: number,
  height: number,
  out: Uint8ClampedArray,
): void {
  if (out.length !== width * height * 4) throw new Error("output is not width × height × 4 bytes");
  const half = width >> 1;
  if (!littleEndian) {
    for (let row = 0; row < height; row++) {
      for (let col = 0; col < width; col++) {
        const c = (row >> 1) * half + (col >> 1);
        const l = Y[y[row * width + col]];
        const o = (row * width + col) * 4;
        out[o] = clamp(l + RV[v[c]]);
        out[o + 1] = clamp(l + GU[u[c]] + GV[v[c]]);
        out[o + 2] = clamp(l + BU[u[c]]);
        out[o + 3] = 255;
      }
    }
    return;
  }
  const pixels = new Uint32Array(out.buffer, out.byteOffset, width * height);
  for (let row = 0; row < height; row++) {
    const line = row * width;
    const chroma = (row >> 1) * half;
    for (let col = 0; col < width; col += 2) {
      const c = chroma + (col >> 1);
      const r = RV[v[c]];
      const g = GU[u[c]] + GV[v[c]];
      const b = BU[u[c]];
      for (let k = 0; k < 2; k++) {
        const l = Y[y[line + col + k]];
        pixels[line + col + k] = 0xff000000 | (clamp(l + b) << 16) | (clamp(l + g) << 8) | clamp(l + r);
      }
    }
  }
}
