// Asking for the camera and microphone, and saying in plain words what went wrong.

/** What to ask for, in order: both, then the microphone alone (no camera), then the camera alone. */
export function pickConstraints(camera?: string, mic?: string): MediaStreamConstraints[] {
  const video: MediaTrackConstraints = {
    ...(camera ? { deviceId: { exact: camera } } : {}),
    width: { ideal: 1280 },
    height: { ideal: 720 },
    frameRate: { ideal: 30 },
  };
  const audio: MediaTrackConstraints = {
    ...(mic ? { deviceId: { exact: mic } } : {}),
    echoCancellation: true,
    noiseSuppression: true,
    autoGainControl: true,
  };
  return [{ video, audio }, { audio }, { video }];
}

/** A getUserMedia failure in words, with what to do about it. */
export function describeMediaError(e: unknown): string {
  const name = e instanceof DOMException ? e.name : "";
  switch (name) {
    case "NotAllowedError":
      return (
        "Your browser is not letting this page use the camera and microphone. Allow them for this site " +
        "(the camera icon next to the address, or your browser's site settings), then press Try again. " +
        "You can also join without them: the host will not see or hear you."
      );
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera or microphone was found. Plug one in and press Try again, or join without them.";
    case "NotReadableError":
    case "AbortError":
      return "The camera or microphone is busy in another program. Close it there and press Try again.";
    default:
      return "The camera and microphone could not be opened. Press Try again, or join without them.";
  }
}
