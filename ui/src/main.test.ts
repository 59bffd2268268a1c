// The screens of index.html as main.ts renders them, driven the way the app drives them: the
// backend's events in, clicks and keys out as backend commands.
//
// Mocked, because they cannot exist in jsdom: Tauri's IPC (`invoke`, `listen`: there is no
// Rust side here; the commands themselves are tested on Tauri's mock runtime in
// src-tauri/src/commands.rs) and the video views (no canvas, no WebSocket to the frame
// socket: video.ts's parts are tested in frame.test.ts and yuv.test.ts, and the real ones in
// the end-to-end test).

/// <reference types="vite/client" />
import { beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { BackendEvent } from "./state";
import html from "../index.html?raw";

const calls: { cmd: string; args: unknown }[] = [];
const listeners = new Map<string, (e: { payload: unknown }) => void>();

vi.mock("@tauri-apps/api/core", () => ({
  invoke: async (cmd: string, args: unknown) => {
    calls.push({ cmd, args });
    switch (cmd) {
      case "app_info":
        return {
          remoteVideoUrl: "ws://127.0.0.1:1/remote?token=t",
          localVideoUrl: "ws://127.0.0.1:1/local?token=t",
          embeddedServer: "http://127.0.0.1:2",
          version: "0.1.0",
          launchLink: null,
          videoDrawing: "canvas2d",
        };
      case "devices":
        return {
          cameras: [{ spec: "pattern:640x360", label: "Test pattern", isDefault: true }],
          microphones: [{ spec: "tone", label: "Test tone", isDefault: true }],
          speakers: [],
          problems: [],
        };
      case "get_settings":
        return {
          displayName: "Dr. Ada",
          serverUrl: "",
          apiKey: "",
          relayOnly: false,
          lanHosting: false,
          preferredCodec: "vp8",
          echoCancellation: true,
          noiseSuppression: true,
          autoGain: true,
          lowBandwidth: false,
          theme: "system",
          video: "pattern:640x360",
          audio: "tone",
          speaker: "",
        };
      case "check_server": {
        const link = (args as { link: string | null }).link;
        if (link?.includes("unreachable")) throw "cannot reach http://unreachable:1: connection refused";
        return { server: "http://127.0.0.1:2", ms: 3.2 };
      }
      case "start_call":
        return { inviteLink: "confer+http://127.0.0.1:2/join/r#t", room: "r" };
      default:
        return undefined;
    }
  },
}));

vi.mock("@tauri-apps/api/event", () => ({
  listen: async (name: string, handler: (e: { payload: unknown }) => void) => {
    listeners.set(name, handler);
    return () => listeners.delete(name);
  },
}));

vi.mock("./video", () => ({
  VideoView: class {
    drawn = 0;
    size = [0, 0];
    live() {
      return false;
    }
    close() {}
  },
}));

const $ = (id: string) => document.getElementById(id) as HTMLElement;
const visible = (id: string) => !$(id).hidden;

function emit(event: BackendEvent): void {
  const handler = listeners.get("call");
  if (!handler) throw new Error("the page does not listen for call events");
  handler({ payload: event });
}

/** Lets the page's promise chains (each command awaits its invoke) run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

function commands(name: string): unknown[] {
  return calls.filter((c) => c.cmd === name).map((c) => c.args);
}

beforeAll(async () => {
  // jsdom has <dialog> but not showModal/close: what a browser does, as far as this test needs.
  HTMLDialogElement.prototype.showModal ??= function (this: HTMLDialogElement) {
    this.setAttribute("open", "");
  };
  HTMLDialogElement.prototype.close ??= function (this: HTMLDialogElement) {
    this.removeAttribute("open");
  };
  document.body.innerHTML = new DOMParser().parseFromString(html, "text/html").body.innerHTML;
  await import("./main");
  for (let i = 0; i < 20 && document.body.dataset.ready !== "true"; i++) await settle();
  expect(document.body.dataset.ready).toBe("true");
});

beforeEach(() => {
  calls.length = 0;
});

describe("the desktop UI, screen by screen", () => {
  it("starts on the home screen with the remembered name and devices", () => {
    expect(visible("screen-home")).toBe(true);
    expect(($("display-name") as HTMLInputElement).value).toBe("Dr. Ada");
    expect(($("camera-select") as HTMLSelectElement).options[0]?.textContent).toContain("Test pattern");
  });

  it("a hidden window on the home screen lets the camera and microphone go, and takes them back when shown", async () => {
    const setHidden = (hidden: boolean) => {
      Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
      document.dispatchEvent(new Event("visibilitychange"));
    };
    try {
      setHidden(true);
      await settle();
      expect(commands("stop_preview")).toHaveLength(1);
      expect(commands("stop_mic_meter")).toHaveLength(1);
      expect(commands("start_preview")).toHaveLength(0);
      setHidden(false);
      await settle();
      expect(commands("start_preview")).toEqual([{ video: "pattern:640x360" }]);
      expect(commands("start_mic_meter")).toHaveLength(1);
      expect(commands("stop_preview")).toHaveLength(1);
    } finally {
      delete (document as { hidden?: boolean }).hidden;
    }
  });

  it("the pre-call check says whether the server answers, for a pasted link its server", async () => {
    expect($("server-check").textContent).toBe("The server answered in 3 ms.");
    const field = $("join-link") as HTMLInputElement;
    field.value = "http://unreachable:1/join/r#t";
    field.dispatchEvent(new Event("input"));
    await new Promise((resolve) => setTimeout(resolve, 450));
    for (let i = 0; i < 5; i++) await settle();
    expect(commands("check_server")).toEqual([{ settings: expect.anything(), link: "http://unreachable:1/join/r#t" }]);
    expect($("server-check").textContent).toBe(
      "The link's server cannot be reached: cannot reach http://unreachable:1: connection refused",
    );
    expect($("server-check").classList.contains("error")).toBe(true);
    field.value = "";
    field.dispatchEvent(new Event("input"));
    await new Promise((resolve) => setTimeout(resolve, 450));
    for (let i = 0; i < 5; i++) await settle();
    expect($("server-check").textContent).toBe("The server answered in 3 ms.");
    expect($("server-check").classList.contains("error")).toBe(false);
  });

  it("settings: the dialog shows the saved choices and saves what is ticked", async () => {
    $("open-settings").click();
    const dialog = $("settings") as HTMLDialogElement;
    expect(dialog.open).toBe(true);
    const form = $("settings-form") as HTMLFormElement;
    const box = (name: string) => form.elements.namedItem(name) as HTMLInputElement;
    expect(box("echoCancellation").checked).toBe(true);
    expect(box("lanHosting").checked).toBe(false);
    box("lanHosting").checked = true;
    const save = $("settings-save") as HTMLButtonElement;
    form.dispatchEvent(new SubmitEvent("submit", { bubbles: true, cancelable: true, submitter: save }));
    for (let i = 0; i < 5; i++) await settle();
    const saved = commands("save_settings") as { settings: Record<string, unknown> }[];
    expect(saved).toHaveLength(1);
    expect(saved[0].settings.lanHosting).toBe(true);
    expect(saved[0].settings.echoCancellation).toBe(true);
    expect(dialog.open).toBe(false);
  });

  it("hosts: start, the invite link, a knock named and admitted", async () => {
    $("start-call").click();
    await settle();
    await settle();
    expect(commands("start_call")).toHaveLength(1);
    emit({ kind: "joined", role: "host", state: "admitted", resumed: false });
    await settle();
    expect(visible("screen-lobby")).toBe(true);
    expect(($("invite-link") as HTMLInputElement).value).toBe("confer+http://127.0.0.1:2/join/r#t");
    expect($("invite-note").textContent).toContain("this computer only");

    emit({ kind: "knock", peer: "p7", name: "Pat" });
    const admit = document.querySelector<HTMLButtonElement>("#knocks li button.primary");
    expect(document.querySelector("#knocks li")?.textContent).toContain("Pat");
    expect(admit?.getAttribute("aria-label")).toBe("Admit Pat");
    admit!.click();
    await settle();
    expect(commands("admit")).toEqual([{ peer: "p7" }]);
  });

  it("in the call: the code, the stats panel, keys to mute and chat, then the end", async () => {
    emit({ kind: "call-ready" });
    emit({ kind: "connected" });
    emit({ kind: "verification-code", code: "041 914" });
    expect(visible("screen-call")).toBe(true);
    expect($("sas").textContent).toBe("Code: 041 914");

    const display = { published: 0, sent: 0, drawn: 0, replaced: 0, latency_p50_ms: null, latency_p95_ms: null };
    emit({
      kind: "stats",
      call: {
        rtt_ms: 42,
        loss_pct: 0.5,
        send_loss_pct: 3.2,
        jitter_ms: 4,
        send_kbps: 900,
        recv_kbps: 850,
        fps_received: 30,
        fps_sent: 30,
        width: 640,
        height: 360,
        freezes: 0,
        path: "relay",
        codec_sent: "vp8",
        codec_received: "vp8",
        quality: { level: "fair", reason: "some loss" },
      },
      remote_display: display,
      local_display: display,
    });
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "s", bubbles: true }));
    expect(visible("stats-panel")).toBe(true);
    const stats = $("stats-list").textContent ?? "";
    expect(stats).toContain("relayed (TURN)");
    expect(stats).toContain("42 ms");
    expect(stats).toContain("3.2% out on the wire");
    expect(stats).toContain("640×360");

    document.dispatchEvent(new KeyboardEvent("keydown", { key: "m", bubbles: true }));
    await settle();
    expect(commands("set_muted")).toEqual([{ muted: true }]);
    expect($("btn-mute").textContent).toContain("Unmute");

    // A key typed into the chat box is text, not a shortcut.
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "c", bubbles: true }));
    const input = $("chat-input") as HTMLInputElement;
    expect(document.activeElement).toBe(input);
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "m", bubbles: true }));
    await settle();
    expect(commands("set_muted")).toHaveLength(1);

    input.value = "Hello, Pat";
    $("chat-form").dispatchEvent(new Event("submit", { bubbles: true, cancelable: true }));
    await settle();
    expect(commands("send_chat")).toEqual([{ text: "Hello, Pat" }]);

    emit({ kind: "chat", id: "c1", text: "<b>Hello</b>, doctor" });
    const lines = $("chat-log").textContent ?? "";
    expect(lines).toContain("<b>Hello</b>, doctor");
    expect($("chat-log").querySelector("b")).toBeNull();

    emit({ kind: "peer-hung-up", reason: "hung up" });
    emit({ kind: "ended", reason: "The other person hung up." });
    expect(visible("screen-ended")).toBe(true);
    expect($("ended-reason").textContent).not.toBe("");
  });
});
