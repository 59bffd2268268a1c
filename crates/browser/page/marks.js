// Confer's frame mark in the browser, shared by the test pages: drawing it on a canvas
// (`markedSource`, a camera stand-in) and reading it back from a received video (the peer
// page, and the guest page under test or benchmark, where it is injected over DevTools).
"use strict";

// Confer's frame mark (crates/media/src/mark.rs): 88 bits in 22 x 4 blocks at the top left,
// sync byte, 32-bit frame id, 40-bit capture time (wall clock, µs), CRC-8 (0x07) over the 9
// payload bytes; block side width / 40 (at least 8), bit 1 light, bit 0 dark.
const MARK_COLS = 22;
const MARK_ROWS = 4;
const MARK_SYNC = 0b10110010;
const TS_MOD = 2 ** 40;

function blockSize(width) {
  return Math.max(8, Math.floor(width / 40));
}

function crc8(bytes) {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

// Wall-clock microseconds, comparable with a native peer's on the same machine.
function wallClockUs() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

function markBytes(frameId, captureUs) {
  let ts = captureUs % TS_MOD;
  const tsBytes = [];
  for (let i = 0; i < 5; i++) {
    tsBytes.unshift(ts % 256);
    ts = Math.floor(ts / 256);
  }
  const payload = [frameId >>> 24, (frameId >>> 16) & 255, (frameId >>> 8) & 255, frameId & 255, ...tsBytes];
  return [MARK_SYNC, ...payload, crc8(payload)];
}

function drawMark(ctx, width, frameId, captureUs) {
  const b = blockSize(width);
  const bytes = markBytes(frameId, captureUs);
  for (let i = 0; i < MARK_COLS * MARK_ROWS; i++) {
    const bit = (bytes[i >> 3] >> (7 - (i & 7))) & 1;
    ctx.fillStyle = bit ? "rgb(235,235,235)" : "rgb(16,16,16)";
    ctx.fillRect((i % MARK_COLS) * b, Math.floor(i / MARK_COLS) * b, b, b);
  }
}

// Reads a mark from RGBA pixels of the mark's area (its width is MARK_COLS blocks).
function readMark(pixels, width) {
  const b = blockSize(width);
  const stride = MARK_COLS * b;
  const bytes = new Array(11).fill(0);
  for (let i = 0; i < MARK_COLS * MARK_ROWS; i++) {
    const bx = (i % MARK_COLS) * b;
    const by = Math.floor(i / MARK_COLS) * b;
    let sum = 0;
    let n = 0;
    for (let y = by + (b >> 2); y < by + ((3 * b) >> 2); y++) {
      for (let x = bx + (b >> 2); x < bx + ((3 * b) >> 2); x++) {
        const o = (y * stride + x) * 4;
        sum += 0.299 * pixels[o] + 0.587 * pixels[o + 1] + 0.114 * pixels[o + 2];
        n += 1;
      }
    }
    if (sum / n > 126) bytes[i >> 3] |= 0x80 >> (i & 7);
  }
  if (bytes[0] !== MARK_SYNC || crc8(bytes.slice(1, 10)) !== bytes[10]) return null;
  const frameId = ((bytes[1] << 24) >>> 0) + (bytes[2] << 16) + (bytes[3] << 8) + bytes[4];
  let captureUs = 0;
  for (let i = 5; i < 10; i++) captureUs = captureUs * 256 + bytes[i];
  return { frameId, captureUs };
}


// A camera stand-in that stamps Confer's mark: a moving picture drawn on a canvas, each frame
// marked with its id and the wall-clock time it was drawn, then handed to WebRTC.
function markedSource(width, height, fps) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const stream = canvas.captureStream(0);
  const track = stream.getVideoTracks()[0];
  let frameId = 0;
  const timer = setInterval(() => {
    const t = frameId / fps;
    ctx.fillStyle = `hsl(${(frameId * 3) % 360}, 40%, 45%)`;
    ctx.fillRect(0, 0, width, height);
    ctx.fillStyle = "#f0c040";
    const x = ((Math.sin(t) + 1) / 2) * (width - width / 5);
    ctx.fillRect(x, height / 3, width / 5, height / 3);
    drawMark(ctx, width, frameId, wallClockUs());
    track.requestFrame();
    frameId += 1;
  }, 1000 / fps);
  track.addEventListener("ended", () => clearInterval(timer));
  return track;
}

// Reads the mark of the frame `video` presents now (`meta` from requestVideoFrameCallback),
// copying only the mark's corner through `reader` (a 2D context): {frameId, ageMs}, or null.
function presentedMark(reader, video, meta) {
  const nowUs = wallClockUs();
  const b = blockSize(meta.width);
  const [w, h] = [MARK_COLS * b, MARK_ROWS * b];
  reader.canvas.width = w;
  reader.canvas.height = h;
  reader.drawImage(video, 0, 0, w, h, 0, 0, w, h);
  const mark = readMark(reader.getImageData(0, 0, w, h).data, meta.width);
  if (!mark) return null;
  const age = (((nowUs % TS_MOD) - mark.captureUs) % TS_MOD + TS_MOD) % TS_MOD;
  return { frameId: mark.frameId, ageMs: age / 1000 };
}

// Reads the mark of every frame `video` presents into `conferMarks.log` ({frameId, ageMs, width}).
function watchMarks(video) {
  const reader = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
  const onFrame = (now, meta) => {
    if (meta.width >= 320) {
      const mark = presentedMark(reader, video, meta);
      if (mark) conferMarks.log.push({ ...mark, width: meta.width });
      else conferMarks.unmarked += 1;
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

var conferMarks = { log: [], unmarked: 0, watch: watchMarks };
