import { describe, expect, it } from "vitest";
import { fingerprint, sasCode, sasFromSdp } from "./sas";

const sdp = (fp: string) => `v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\na=fingerprint:sha-256 ${fp}\r\nm=audio 9\r\n`;

describe("verification code", () => {
  it("matches the native app's code for the same pair (crates/call/src/sas.rs)", async () => {
    expect(await sasCode("SHA-256 AA:BB:CC", "SHA-256 11:22:33")).toBe("925 296");
    expect(await sasCode("SHA-256 11:22:33", "SHA-256 AA:BB:CC")).toBe("925 296");
  });

  it("reads the fingerprint from an SDP in any case, and a man in the middle changes the code", async () => {
    expect(fingerprint(sdp("aa:bb:cc"))).toBe("SHA-256 AA:BB:CC");
    expect(fingerprint("v=0\r\n")).toBeNull();
    const honest = await sasFromSdp(sdp("aa:11"), sdp("bb:22"));
    expect(await sasFromSdp(sdp("bb:22"), sdp("aa:11"))).toBe(honest);
    expect(await sasFromSdp(sdp("aa:11"), sdp("cc:33"))).not.toBe(honest);
    expect(await sasFromSdp("v=0\r\n", sdp("bb:22"))).toBeNull();
  });
});
