// The frame socket's message layout (confer-frames, Rust): a 32-byte little-endian header,
// then the I420 planes.

export const HEADER_LEN = 32;
const MAGIC = [0x43, 0x46, 0x56, 0x31]; // "CFV1"

export interface FrameHeader {
  stream: "remote" | "local";
  width: number;
  height: number;
  seq: number;
  captureUs: number;
}

export interface Planes {
  header: FrameHeader;
  y: Uint8Array;
  u: Uint8Array;
  v: Uint8Array;
}

/** Reads one frame message; throws with the reason when it is not one. */
export function parseFrame(buffer: ArrayBuffer): Planes {
  if (buffer.byteLength < HEADER_LEN) throw new Error("shorter than the header");
  const view = new DataView(buffer);
  for (let i = 0; i < 4; i++) {
    if (view.getUint8(i) !== MAGIC[i]) throw new Error("wrong magic");
  }
  const streamCode = view.getUint8(4);
  if (streamCode > 1) throw new Error("unknown stream");
  if (view.getUint8(5) !== 0) throw new Error("unknown pixel format");
  const width = view.getUint32(8, true);
  const height = view.getUint32(12, true);
  if (width === 0 || height === 0 || width % 2 || height % 2) throw new Error("size zero or odd");
  const luma = width * height;
  const chroma = (width / 2) * (height / 2);
  if (buffer.byteLength - HEADER_LEN !== luma + 2 * chroma) {
    throw new Error(`${buffer.byteLength - HEADER_LEN} bytes of planes for ${width}x${height}`);
  }
  const header: FrameHeader = {
    stream: streamCode === 0 ? "remote" : "local",
    width,
    height,
    seq: view.getUint32(16, true),
    captureUs: Number(view.getBigUint64(24, true)),
  };
  return {
    header,
    y: new Uint8Array(buffer, HEADER_LEN, luma),
    u: new Uint8Array(buffer, HEADER_LEN + luma, chroma),
    v: new Uint8Array(buffer, HEADER_LEN + luma + chroma, chroma),
  };
}
