// The browser guest page: device check, waiting room, call, end. It renders GuestCall's
// events; everything about the call itself is in call.ts.

import { type CallEvent, type CallStats, GuestCall } from "./call";
import { safeName } from "./data";
import { type Invite, parseInvite } from "./invite";
import { termRows } from "../src/dom";
import { describeMediaError, pickConstraints } from "./devices";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

type Screen = "problem" | "check" | "waiting" | "call" | "ended";

function show(screen: Screen): void {
  for (const s of ["problem", "check", "waiting", "call", "ended"] as const) $(s).hidden = s !== screen;
  const inCall = screen === "call";
  $("timer").hidden = !inCall;
  if (!inCall) {
    $("sas").hidden = true;
    $("quality").hidden = true;
    $("banner").hidden = true;
  }
}

function problem(text: string): void {
  $("problem-text").textContent = text;
  show("problem");
}

/** What the page knows, for rendering and for automation (`window.confer`). */
const state = {
  invite: undefined as Invite | undefined,
  media: undefined as MediaStream | undefined,
  call: undefined as GuestCall | undefined,
  screen: "check" as Screen,
  sas: null as string | null,
  connectedAt: 0,
  peerMuted: false,
  peerCamera: true,
  lastStats: undefined as CallStats | undefined,
  chat: [] as { id: string; text: string; mine: boolean; delivered: boolean }[],
  files: new Map<number, { name: string; bytes: number; size: number; done?: string; blob?: Blob; url?: string }>(),
  ended: "",
};

// ---- Device check -------------------------------------------------------------------------

let meterStop: (() => void) | undefined;

async function openMedia(): Promise<void> {
  stopMedia();
  $<HTMLButtonElement>("join").disabled = true;
  $("permission").hidden = true;
  $("retry").hidden = true;
  const camera = $<HTMLSelectElement>("camera-select").value || undefined;
  const mic = $<HTMLSelectElement>("mic-select").value || undefined;
  let media: MediaStream | undefined;
  let lastError: unknown;
  for (const constraints of pickConstraints(camera, mic)) {
    try {
      media = await navigator.mediaDevices.getUserMedia(constraints);
      break;
    } catch (e) {
      lastError = e;
      if (e instanceof DOMException && e.name === "NotAllowedError") break;
    }
  }
  if (!media) {
    $("permission").textContent = describeMediaError(lastError);
    $("permission").hidden = false;
    $("retry").hidden = false;
    media = new MediaStream(); // join to see and hear the host, without sending
  }
  state.media = media;
  const preview = $<HTMLVideoElement>("preview");
  preview.srcObject = media;
  $("no-camera").hidden = media.getVideoTracks().length > 0;
  await listDevices(media);
  meterStop = startMeter(media);
  $<HTMLButtonElement>("join").disabled = false;
}

/** Turns the camera and microphone off (the call is over, or they are being reopened). */
function stopMedia(): void {
  state.media?.getTracks().forEach((t) => t.stop());
  state.media = undefined;
  meterStop?.();
  meterStop = undefined;
}

async function listDevices(media: MediaStream): Promise<void> {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select: HTMLSelectElement, kind: MediaDeviceKind, current?: string) => {
    const list = devices.filter((d) => d.kind === kind && d.deviceId);
    select.replaceChildren(
      ...list.map((d, i) => {
        const option = new Option(d.label || `${kind.replace("input", "").replace("output", "")} ${i + 1}`, d.deviceId);
        option.selected = d.deviceId === current;
        return option;
      }),
    );
    select.disabled = list.length === 0;
  };
  const settings = (t?: MediaStreamTrack) => t?.getSettings().deviceId;
  fill($("camera-select"), "videoinput", settings(media.getVideoTracks()[0]));
  fill($("mic-select"), "audioinput", settings(media.getAudioTracks()[0]));
  const canPickSpeaker = "setSinkId" in HTMLMediaElement.prototype;
  $("speaker-row").hidden = !canPickSpeaker;
  if (canPickSpeaker) fill($("speaker-select"), "audiooutput");
}

/** Drives the level meter from the microphone; returns its stop. */
function startMeter(media: MediaStream): () => void {
  const track = media.getAudioTracks()[0];
  if (!track) return () => {};
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const meter = $("meter-fill");
  const timer = window.setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    // -60 dBFS .. 0 dBFS across the bar.
    const level = Math.max(0, Math.min(100, Math.round(((20 * Math.log10(rms + 1e-9) + 60) / 60) * 100)));
    meter.style.width = `${level}%`;
    meter.parentElement?.setAttribute("aria-valuenow", String(level));
  }, 100);
  return () => {
    window.clearInterval(timer);
    void ctx.close();
  };
}

async function sinkOf(element: HTMLMediaElement): Promise<void> {
  const id = $<HTMLSelectElement>("speaker-select").value;
  const withSink = element as HTMLMediaElement & { setSinkId?: (id: string) => Promise<void> };
  if (id && withSink.setSinkId) await withSink.setSinkId(id).catch(() => undefined);
}

/** A 440 Hz tone for one second on the chosen speaker. */
async function testSpeaker(): Promise<void> {
  const ctx = new AudioContext();
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  gain.gain.value = 0.2;
  osc.frequency.value = 440;
  const out = ctx.createMediaStreamDestination();
  osc.connect(gain).connect(out);
  const audio = new Audio();
  audio.srcObject = out.stream;
  await sinkOf(audio);
  osc.start();
  await audio.play().catch(() => undefined);
  $("test-speaker").textContent = "Playing a tone…";
  window.setTimeout(() => {
    osc.stop();
    void ctx.close();
    $("test-speaker").textContent = "Test speaker";
  }, 1000);
}

// ---- The call -----------------------------------------------------------------------------

function join(): void {
  const invite = state.invite;
  if (!invite || !state.media) return;
  const consent = $<HTMLInputElement>("consent");
  if (invite.claims.consent && !consent.checked) {
    consent.focus();
    $("consent-row").classList.add("required");
    return;
  }
  const name = $<HTMLInputElement>("name").value.trim();
  try {
    localStorage.setItem("confer-guest-name", name);
  } catch {
    /* storage may be off: the name is only a convenience */
  }
  meterStop?.();
  meterStop = undefined;
  state.sas = null;
  state.chat = [];
  state.files.clear();
  $("messages").replaceChildren();
  $("files").replaceChildren();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
  // `?codec=H264` offers that codec first (the browser's own order otherwise).
  const preferCodec = new URLSearchParams(location.search).get("codec") ?? undefined;
  const call = new GuestCall({ url, token: invite.token, name, media: state.media, preferCodec, onEvent });
  state.call = call;
  $<HTMLVideoElement>("self").srcObject = state.media;
  setPressed("mute", false);
  setPressed("camera", false);
  call.start();
  show("waiting");
  state.screen = "waiting";
}

function setPressed(id: string, pressed: boolean): void {
  $(id).setAttribute("aria-pressed", String(pressed));
}

function onEvent(e: CallEvent): void {
  switch (e.type) {
    case "waiting":
      state.screen = "waiting";
      show("waiting");
      break;
    case "admitted":
      state.screen = "call";
      show("call");
      $("connecting").hidden = false;
      break;
    case "connected":
      state.sas = e.sas;
      state.connectedAt = Date.now();
      $("connecting").hidden = true;
      $("sas-code").textContent = e.sas ?? "unavailable";
      $("sas").hidden = false;
      break;
    case "reconnecting":
      $("banner").textContent = e.reason;
      $("banner").hidden = false;
      break;
    case "reconnected":
      $("banner").hidden = true;
      break;
    case "remote-stream": {
      const video = $<HTMLVideoElement>("remote");
      if (video.srcObject !== e.stream) video.srcObject = e.stream;
      const audio = $<HTMLAudioElement>("remote-audio");
      if (audio.srcObject !== e.stream) {
        audio.srcObject = e.stream;
        void sinkOf(audio);
      }
      break;
    }
    case "peer-media":
      state.peerMuted = e.muted;
      state.peerCamera = e.camera;
      $("remote-muted").hidden = !e.muted;
      $("remote-off").hidden = e.camera;
      break;
    case "chat":
      state.chat.push({ id: e.id, text: e.text, mine: false, delivered: true });
      renderChat();
      if ($("chat").hidden) {
        const badge = $("unread");
        badge.textContent = String(Number(badge.textContent || "0") + 1);
        badge.hidden = false;
      }
      break;
    case "receipt": {
      const m = state.chat.find((c) => c.id === e.id);
      if (m) m.delivered = true;
      renderChat();
      break;
    }
    case "file-incoming":
      state.files.set(e.id, { name: e.name, bytes: 0, size: e.size });
      openChat(true);
      renderFiles();
      break;
    case "file-progress": {
      const f = state.files.get(e.id);
      if (f) f.bytes = e.bytes;
      renderFiles();
      break;
    }
    case "file-received": {
      const f = state.files.get(e.id);
      if (f) {
        f.bytes = f.size;
        f.done = e.ok ? "received, verified" : "damaged in transit (not saved)";
        if (e.ok) {
          f.blob = e.blob;
          f.url = URL.createObjectURL(e.blob);
        }
      }
      renderFiles();
      break;
    }
    case "file-sent": {
      const f = state.files.get(e.id);
      if (f) f.done = e.ok ? "delivered, verified" : "not delivered";
      renderFiles();
      break;
    }
    case "file-cancelled": {
      const f = state.files.get(e.id);
      if (f) f.done = `stopped: ${e.reason}`;
      renderFiles();
      break;
    }
    case "quality":
      state.lastStats = e.stats;
      $("quality").hidden = false;
      $("quality").dataset.level = e.quality.level;
      $("quality").textContent =
        e.quality.level === "good" ? "Connection good" : `Connection ${e.quality.level}: ${e.quality.reason}`;
      renderStats(e.stats);
      break;
    case "warning":
      console.warn(e.message);
      break;
    case "ended":
      state.ended = e.reason;
      state.screen = "ended";
      $("ended-reason").textContent = e.reason;
      $("ended-duration").textContent = state.connectedAt ? `Call length ${duration(Date.now() - state.connectedAt)}.` : "";
      state.connectedAt = 0;
      for (const f of state.files.values()) if (f.url) URL.revokeObjectURL(f.url);
      stopMedia();
      show("ended");
      break;
  }
}

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function renderChat(): void {
  $("messages").replaceChildren(
    ...state.chat.map((m) => {
      const li = document.createElement("li");
      li.className = m.mine ? "mine" : "";
      li.textContent = m.text;
      if (m.mine) {
        const receipt = document.createElement("span");
        receipt.className = "receipt";
        receipt.textContent = m.delivered ? "✓ delivered" : "sending…";
        li.append(receipt);
      }
      return li;
    }),
  );
  $("messages").lastElementChild?.scrollIntoView({ block: "end" });
}

function renderFiles(): void {
  $("files").replaceChildren(
    ...[...state.files.entries()].map(([id, f]) => {
      const li = document.createElement("li");
      li.dataset.id = String(id);
      const name = document.createElement("span");
      name.textContent = f.name;
      li.append(name);
      if (!f.done) {
        const progress = document.createElement("progress");
        progress.max = Math.max(1, f.size);
        progress.value = f.bytes;
        progress.setAttribute("aria-label", `${f.name}: ${Math.round((100 * f.bytes) / Math.max(1, f.size))}%`);
        const cancel = document.createElement("button");
        cancel.type = "button";
        cancel.textContent = "Cancel";
        cancel.onclick = () => state.call?.cancelFile(id);
        li.append(progress, cancel);
      } else {
        const status = document.createElement("span");
        status.className = "muted-text";
        status.textContent = f.done;
        li.append(status);
      }
      if (f.url) {
        // Saving is the user's choice: nothing is written until this link is used.
        const save = document.createElement("a");
        save.href = f.url;
        save.download = safeName(f.name);
        save.textContent = "Save";
        li.append(save);
      }
      return li;
    }),
  );
}

function renderStats(s: CallStats): void {
  const rows: [string, string][] = [
    ["Path", s.path ?? "…"],
    ["Round trip", s.rttMs === undefined ? "…" : `${Math.round(s.rttMs)} ms`],
    ["Loss", `${s.lossPct.toFixed(1)}%`],
    ["Jitter", `${Math.round(s.jitterMs)} ms`],
    ["Sending", `${Math.round(s.sendKbps)} kbit/s`],
    ["Receiving", `${Math.round(s.recvKbps)} kbit/s`],
    ["Video", s.width ? `${s.width}×${s.height} at ${Math.round(s.fpsReceived)} fps` : "none"],
    ["Codec", [s.codecReceived, s.codecSent].filter(Boolean).join(" / ") || "…"],
  ];
  $("stats").replaceChildren(
    ...termRows(rows),
  );
}

function openChat(open: boolean): void {
  $("chat").hidden = !open;
  setPressed("chat-toggle", open);
  if (open) {
    $("unread").hidden = true;
    $("unread").textContent = "";
  }
}

function sendChat(event: Event): void {
  event.preventDefault();
  const input = $<HTMLInputElement>("chat-input");
  const id = state.call?.sendChat(input.value);
  if (!id) return;
  state.chat.push({ id, text: input.value.trim(), mine: true, delivered: false });
  input.value = "";
  renderChat();
}

async function sendFile(file: File): Promise<void> {
  const call = state.call;
  if (!call) return;
  const id = Math.floor(Math.random() * 2 ** 52);
  state.files.set(id, { name: file.name, bytes: 0, size: file.size });
  renderFiles();
  await call.sendFile(file, id);
}

function toggleMute(): void {
  const muted = $("mute").getAttribute("aria-pressed") !== "true";
  state.call?.setMuted(muted);
  setPressed("mute", muted);
  $("mute").textContent = muted ? "Unmute" : "Mute";
}

function toggleCamera(): void {
  const off = $("camera").getAttribute("aria-pressed") !== "true";
  state.call?.setCamera(!off);
  setPressed("camera", off);
  $("camera").textContent = off ? "Start video" : "Stop video";
}

// ---- Start --------------------------------------------------------------------------------

function wire(): void {
  $("retry").onclick = () => void openMedia();
  $("camera-select").onchange = () => void openMedia();
  $("mic-select").onchange = () => void openMedia();
  $("test-speaker").onclick = () => void testSpeaker();
  $("join").onclick = join;
  $("leave-waiting").onclick = () => state.call?.hangUp();
  $("mute").onclick = toggleMute;
  $("camera").onclick = toggleCamera;
  $("chat-toggle").onclick = () => openChat($("chat").hidden);
  $("stats-toggle").onclick = () => {
    $("stats").hidden = !$("stats").hidden;
    setPressed("stats-toggle", !$("stats").hidden);
  };
  $("hang-up").onclick = () => state.call?.hangUp();
  $("chat-form").onsubmit = sendChat;
  $<HTMLInputElement>("file-input").onchange = (e) => {
    const input = e.target as HTMLInputElement;
    for (const file of input.files ?? []) void sendFile(file);
    input.value = "";
  };
  $("rejoin").onclick = () => {
    show("check");
    state.screen = "check";
    void openMedia();
  };
  document.addEventListener("keydown", (e) => {
    if (state.screen !== "call" || e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
    if (typing) return;
    const key = e.key.toLowerCase();
    if (key === "m") toggleMute();
    else if (key === "v") toggleCamera();
    else if (key === "c") openChat($("chat").hidden);
  });
  window.setInterval(() => {
    if (state.connectedAt) $("timer").textContent = duration(Date.now() - state.connectedAt);
  }, 1000);
}

function start(): void {
  wire();
  if (!window.isSecureContext || !navigator.mediaDevices) {
    problem(
      "This page needs a secure connection (an address starting with https://) to use your camera and microphone. " +
        "Ask the person who invited you for an https link.",
    );
    return;
  }
  const invite = parseInvite(location.hash, Date.now() / 1000);
  if ("error" in invite) {
    problem(invite.error);
    return;
  }
  state.invite = invite;
  if (invite.claims.consent) {
    $("consent-text").textContent = invite.claims.consent;
    $("consent-row").hidden = false;
  }
  try {
    $<HTMLInputElement>("name").value = localStorage.getItem("confer-guest-name") ?? "";
  } catch {
    /* storage may be off */
  }
  show("check");
  void openMedia();
}

// The automation surface for Confer's interop tests (and a curious user's console): the page
// state and the call, to restart ICE or read stats.
(window as unknown as { confer: unknown }).confer = { state };

start();
