// The Rust side (src-tauri/src/commands.rs), typed.

import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import type { BackendEvent, ServerCheck } from "./state";
import type { VideoDrawing } from "./video";

export interface AppInfo {
  remoteVideoUrl: string;
  localVideoUrl: string;
  embeddedServer: string;
  version: string;
  launchLink: string | null;
  /** How the page draws video: WebGL with a GPU, a 2D canvas without one. */
  videoDrawing: VideoDrawing;
}

export interface Device {
  spec: string;
  label: string;
  isDefault: boolean;
}

export interface Devices {
  cameras: Device[];
  microphones: Device[];
  speakers: Device[];
  problems: string[];
}

export interface MicLevel {
  rmsDbfs: number;
  peakDbfs: number;
  clipped: boolean;
}

export interface Settings {
  displayName: string;
  serverUrl: string;
  apiKey: string;
  relayOnly: boolean;
  lanHosting: boolean;
  preferredCodec: "vp8" | "h264";
  echoCancellation: boolean;
  noiseSuppression: boolean;
  autoGain: boolean;
  lowBandwidth: boolean;
  theme: "system" | "light" | "dark";
  video: string;
  audio: string;
  speaker: string;
}

export const backend = {
  appInfo: () => invoke<AppInfo>("app_info"),
  devices: () => invoke<Devices>("devices"),
  getSettings: () => invoke<Settings>("get_settings"),
  saveSettings: (settings: Settings) => invoke<void>("save_settings", { settings }),
  startPreview: (video: string) => invoke<void>("start_preview", { video }),
  stopPreview: () => invoke<void>("stop_preview"),
  startMicMeter: (audio: string) => invoke<void>("start_mic_meter", { audio }),
  stopMicMeter: () => invoke<void>("stop_mic_meter"),
  testSpeaker: (device: string) => invoke<void>("test_speaker", { device }),
  checkServer: (settings: Settings, link: string | null) =>
    invoke<ServerCheck>("check_server", { settings, link }),
  onMicLevel: (handler: (level: MicLevel | null) => void) =>
    listen<MicLevel | null>("mic-level", (e) => handler(e.payload)),
  startCall: (settings: Settings) =>
    invoke<{ inviteLink: string; room: string }>("start_call", { settings }),
  joinCall: (link: string, settings: Settings) => invoke<void>("join_call", { link, settings }),
  admit: (peer: string) => invoke<void>("admit", { peer }),
  deny: (peer: string) => invoke<void>("deny", { peer }),
  setMuted: (muted: boolean) => invoke<void>("set_muted", { muted }),
  setCamera: (on: boolean) => invoke<void>("set_camera", { on }),
  sendChat: (text: string) => invoke<string>("send_chat", { text }),
  sendFile: async (file: File) =>
    invoke<number>("send_file", new Uint8Array(await file.arrayBuffer()), {
      headers: { "x-file-name": encodeURIComponent(file.name) },
    }),
  cancelTransfer: (id: number) => invoke<void>("cancel_transfer", { id }),
  saveFile: (id: number, name: string) => invoke<string>("save_file", { id, name }),
  switchVideo: (spec: string) => invoke<void>("switch_video", { spec }),
  switchAudio: (spec: string) => invoke<void>("switch_audio", { spec }),
  switchSpeaker: (device: string) => invoke<void>("switch_speaker", { device }),
  hangUp: () => invoke<void>("hang_up"),
  onCallEvent: (handler: (event: BackendEvent) => void) =>
    listen<BackendEvent>("call", (e) => handler(e.payload)),
  /** A link from another launch of the app (clicked in a browser or a mail). */
  onOpenLink: (handler: (link: string) => void) =>
    listen<string>("open-link", (e) => handler(e.payload)),
};

/** A command's error as a sentence. */
export function errorText(e: unknown): string {
  return typeof e === "string" ? e : e instanceof Error ? e.message : JSON.stringify(e);
}
