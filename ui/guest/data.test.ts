import { describe, expect, it } from "vitest";
import { chunkFrame, Incoming, parseChunk, parseMessage, refusal, safeName, sha256Hex } from "./data";

describe("data channel", () => {
  it("parses the native app's messages and refuses anything else", () => {
    expect(parseMessage('{"t":"chat","id":"a1","text":"hi"}')).toEqual({ t: "chat", id: "a1", text: "hi" });
    expect(parseMessage('{"t":"media","muted":true,"camera":false}')).toEqual({ t: "media", muted: true, camera: false });
    expect(parseMessage('{"t":"file-offer","id":3,"name":"a.pdf","size":10,"sha256":"ab"}')).not.toBeNull();
    for (const bad of ["nope", "null", '{"t":"chat","id":1,"text":"x"}', '{"t":"file-result","id":-1,"ok":true}', '{"t":"shell"}']) {
      expect(parseMessage(bad)).toBeNull();
    }
  });

  it("frames chunks with an 8-byte big-endian id, as the native app", () => {
    const frame = chunkFrame(258, new Uint8Array([7, 8, 9]));
    expect(Array.from(frame)).toEqual([0, 0, 0, 0, 0, 0, 1, 2, 7, 8, 9]);
    const parsed = parseChunk(frame.buffer as ArrayBuffer);
    expect(parsed?.id).toBe(258);
    expect(Array.from(parsed?.data ?? [])).toEqual([7, 8, 9]);
    expect(parseChunk(new ArrayBuffer(3))).toBeNull();
  });

  it("verifies a received file against the offered hash", async () => {
    const bytes = new TextEncoder().encode("hello world");
    const sha256 = await sha256Hex(bytes);
    expect(sha256).toBe("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    const good = new Incoming({ t: "file-offer", id: 1, name: "x", size: bytes.length, sha256 });
    expect(good.add(bytes.slice(0, 5))).toBeNull();
    expect(good.complete).toBe(false);
    expect(good.add(bytes.slice(5))).toBeNull();
    expect(good.complete).toBe(true);
    expect((await good.finish()).ok).toBe(true);
    const bad = new Incoming({ t: "file-offer", id: 2, name: "x", size: bytes.length, sha256: "00" });
    bad.add(bytes);
    expect((await bad.finish()).ok).toBe(false);
    expect(bad.add(new Uint8Array(1))).toMatch(/more data/);
  });

  it("refuses files over the limit and keeps saved names inside the folder", () => {
    expect(refusal({ t: "file-offer", id: 1, name: "big", size: 11, sha256: "" }, 10)).toMatch(/more than the 10/);
    expect(refusal({ t: "file-offer", id: 1, name: "ok", size: 10, sha256: "" }, 10)).toBeNull();
    expect(safeName("../../etc/passwd")).toBe("passwd");
    expect(safeName("C:\\Users\\x\\report.pdf")).toBe("report.pdf");
    expect(safeName("..")).toBe("file");
    expect(safeName(".bashrc")).toBe("bashrc");
  });
});
