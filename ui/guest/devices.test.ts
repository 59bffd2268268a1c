import { describe, expect, it } from "vitest";
import { describeMediaError, pickConstraints } from "./devices";

describe("devices", () => {
  it("asks for both, then the microphone alone, then the camera alone", () => {
    const [both, audioOnly, videoOnly] = pickConstraints("cam1", "mic1");
    expect((both.video as MediaTrackConstraints).deviceId).toEqual({ exact: "cam1" });
    expect((both.audio as MediaTrackConstraints).echoCancellation).toBe(true);
    expect(audioOnly.video).toBeUndefined();
    expect(videoOnly.audio).toBeUndefined();
    expect((pickConstraints()[0].video as MediaTrackConstraints).deviceId).toBeUndefined();
  });

  it("explains a refusal in plain words", () => {
    expect(describeMediaError(new DOMException("x", "NotAllowedError"))).toMatch(/not letting this page/);
    expect(describeMediaError(new DOMException("x", "NotFoundError"))).toMatch(/No camera or microphone/);
    expect(describeMediaError(new Error("?"))).toMatch(/could not be opened/);
  });
});
