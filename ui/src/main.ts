// Confer's desktop UI: renders the call view (state.ts) into the screens of index.html and
// turns clicks and keys into backend commands. No business logic lives here.

import { termRows } from "./dom";
import { type AppInfo, type Devices, type Settings, backend, errorText } from "./backend";
import * as S from "./state";
import { VideoView } from "./video";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

let view: S.CallView = S.initial();
let settings: Settings;
let devices: Devices = { cameras: [], microphones: [], speakers: [], problems: [] };
let remoteVideo: VideoView | null = null;
let selfVideo: VideoView | null = null;
let previewVideo: VideoView | null = null;
let localUrl = "";

const SCREENS: Record<S.Phase, string> = {
  home: "screen-home",
  joining: "screen-waiting",
  lobby: "screen-lobby",
  waiting: "screen-waiting",
  connecting: "screen-call",
  "in-call": "screen-call",
  ended: "screen-ended",
};

/** A failed command, shown in the banner as the backend worded it. */
function showError(e: unknown): void {
  set({ ...view, notice: { level: "error", text: errorText(e) } });
}

function set(next: S.CallView): void {
  const before = view;
  view = next;
  render(before);
}

function show(el: HTMLElement, visible: boolean): void {
  if (el.hidden === visible) el.hidden = !visible;
}

/** Sets an element's text only when it changes: a render must not disturb what is under the
 * pointer (a click in flight on a button whose text was just replaced). */
function text(el: HTMLElement, value: string): void {
  if (el.textContent !== value) el.textContent = value;
}

function render(before: S.CallView): void {
  const screen = SCREENS[view.phase];
  for (const id of new Set(Object.values(SCREENS))) show($(id), id === screen);
  if (before.phase !== view.phase) onPhaseChange(before.phase);

  // Header: timer, verification code, quality.
  const inCall = view.phase === "in-call";
  show($("call-timer"), inCall && view.connectedAt !== null);
  const sas = $("sas");
  show(sas, inCall && view.sas !== null);
  text(sas, view.sas ? `Code: ${view.sas}` : "");
  sas.title = "Read this code aloud. If the other person sees a different one, someone may be listening in: hang up.";
  const quality = $("quality");
  const q = view.stats?.quality;
  show(quality, inCall && !!q);
  if (q) {
    quality.dataset.level = q.level;
    text(quality, q.level === "good" ? "Connection good" : `Connection ${q.level}: ${q.reason}`);
  }

  const b = S.banner(view);
  const bannerEl = $("banner");
  show(bannerEl, b !== null);
  if (b) {
    bannerEl.dataset.level = b.level;
    text(bannerEl, b.text);
  }

  // Home.
  const homeError = $("home-error");
  show(homeError, view.phase === "home" && view.notice?.level === "error");
  text(homeError, view.notice?.text ?? "");

  // Lobby.
  $<HTMLInputElement>("invite-link").value = view.inviteLink ?? "";
  text($("invite-note"), S.inviteNote(view.inviteLink));
  if (before.knocks !== view.knocks || before === view) renderKnocks();

  // Waiting.
  text(
    $("waiting-text"),
    view.phase === "joining" ? "Connecting…" : "You are in the waiting room. The host will let you in shortly.",
  );

  // Call.
  const mute = $("btn-mute");
  mute.setAttribute("aria-pressed", String(view.muted));
  text(mute, view.muted ? "Unmute" : "Mute");
  const camera = $("btn-camera");
  camera.setAttribute("aria-pressed", String(!view.camera));
  text(camera, view.camera ? "Stop video" : "Start video");
  const chatButton = $("btn-chat");
  text(chatButton, view.unread > 0 ? `Chat (${view.unread})` : "Chat");
  chatButton.setAttribute("aria-expanded", String(view.chatOpen));
  show($("chat-panel"), view.chatOpen);
  renderRemoteNote();
  renderChat(before);
  // Lists are rebuilt only when they change: a button rebuilt under the pointer every second
  // (each stats event renders) would lose clicks.
  if (before.transfers !== view.transfers || before === view) renderTransfers();
  renderStats();

  // Ended.
  $("ended-reason").textContent = view.endReason ?? "";
  $("ended-duration").textContent =
    view.connectedAt && view.endedAt ? `Duration ${S.clock(view.endedAt - view.connectedAt)}` : "";
}

function onPhaseChange(from: S.Phase): void {
  if (view.phase === "home") startChecks();
  if (from === "home") stopChecks();
  if (view.phase === "ended" || view.phase === "home") {
    remoteVideo?.close();
    selfVideo?.close();
    remoteVideo = selfVideo = null;
  }
  if (view.phase === "ended") $("back-home").focus();
  if (view.phase === "lobby") $("copy-link").focus();
  if (view.phase === "in-call") $("btn-mute").focus();
}

function renderKnocks(): void {
  const list = $("knocks");
  list.replaceChildren(
    ...view.knocks.map((knock) => {
      const li = document.createElement("li");
      const who = document.createElement("span");
      who.textContent = `${knock.name ?? "Someone"} is waiting to join.`;
      const admit = document.createElement("button");
      admit.className = "primary";
      admit.textContent = "Admit";
      admit.setAttribute("aria-label", `Admit ${knock.name ?? "the guest"}`);
      admit.onclick = () => answer(knock.peer, true);
      const deny = document.createElement("button");
      deny.textContent = "Deny";
      deny.setAttribute("aria-label", `Deny ${knock.name ?? "the guest"}`);
      deny.onclick = () => answer(knock.peer, false);
      li.append(who, admit, deny);
      return li;
    }),
  );
}

function renderRemoteNote(): void {
  const note = $("remote-note");
  let message = "";
  if (view.phase === "connecting") message = "Connecting…";
  else if (!view.peerPresent) message = "The other person is not here.";
  else if (!view.peerCamera) message = "The other person's camera is off.";
  else if (remoteVideo && !remoteVideo.live(2000)) message = "Waiting for video…";
  if (view.peerMuted && view.peerPresent) message = message ? `${message} They are muted.` : "They are muted.";
  show(note, message !== "");
  text(note, message);
}

function renderChat(before: S.CallView): void {
  if (before.chat === view.chat && before !== view) return;
  const log = $("chat-log");
  log.replaceChildren(
    ...view.chat.map((line) => {
      const li = document.createElement("li");
      li.className = line.mine ? "mine" : "theirs";
      const text = document.createElement("span");
      text.textContent = line.text; // text, never HTML
      li.append(text);
      if (line.mine) {
        const receipt = document.createElement("small");
        receipt.textContent = line.delivered ? "delivered" : "sending…";
        li.append(receipt);
      }
      return li;
    }),
  );
  log.scrollTop = log.scrollHeight;
}

function size(bytes: number): string {
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(0)} kB`;
  return `${bytes} B`;
}

function renderTransfers(): void {
  $("transfers").replaceChildren(
    ...view.transfers.map((t) => {
      const li = document.createElement("li");
      const label = document.createElement("span");
      const direction = t.incoming ? "From them" : "To them";
      let status = `${Math.round((100 * t.done) / Math.max(1, t.total))}%`;
      if (t.state === "complete") status = t.verified ? "complete, verified" : "complete, NOT verified";
      if (t.state === "cancelled") status = `stopped: ${t.note}`;
      label.textContent = `${direction}: ${t.name} (${size(t.total)}) — ${status}`;
      li.append(label);
      if (t.state === "active") {
        const progress = document.createElement("progress");
        progress.max = t.total || 1;
        progress.value = t.done;
        progress.setAttribute("aria-label", `${t.name} progress`);
        const cancel = document.createElement("button");
        cancel.textContent = "Cancel";
        cancel.onclick = () => void backend.cancelTransfer(t.id);
        li.append(progress, cancel);
      } else if (t.incoming && t.state === "complete") {
        const save = document.createElement("button");
        save.textContent = t.savedTo ? "Saved" : "Save to Downloads";
        save.disabled = t.savedTo !== null;
        if (t.savedTo) save.title = t.savedTo;
        save.onclick = async () => {
          try {
            set(S.savedFile(view, t.id, await backend.saveFile(t.id, t.name)));
          } catch (e) {
            showError(e);
          }
        };
        li.append(save);
      }
      return li;
    }),
  );
}

function renderStats(): void {
  const s = view.stats;
  if (!s || $("stats-panel").hidden) return;
  const d = view.display;
  const rows: [string, string][] = [
    ["Path", s.path === "relay" ? "relayed (TURN)" : s.path ? `direct (${s.path})` : "—"],
    ["Round trip", s.rtt_ms != null ? `${s.rtt_ms.toFixed(0)} ms` : "—"],
    [
      "Loss",
      `${s.loss_pct.toFixed(1)}% in after repairs` +
        (s.send_loss_pct != null ? `, ${s.send_loss_pct.toFixed(1)}% out on the wire` : ""),
    ],
    ["Jitter", `${s.jitter_ms.toFixed(0)} ms`],
    ["Sending", `${s.send_kbps.toFixed(0)} kbit/s, ${s.fps_sent.toFixed(0)} fps`],
    ["Receiving", `${s.recv_kbps.toFixed(0)} kbit/s, ${s.fps_received.toFixed(0)} fps`],
    ["Resolution", s.width ? `${s.width}×${s.height}` : "—"],
    ["Codec", `${s.codec_sent ?? "—"} out, ${s.codec_received ?? "—"} in`],
    ["Freezes", String(s.freezes)],
  ];
  if (d?.remote.latency_p50_ms != null) {
    rows.push(["To screen", `${d.remote.latency_p50_ms.toFixed(0)} ms median, ${d.remote.drawn} frames drawn`]);
  }
  $("stats-list").replaceChildren(
    ...termRows(rows),
  );
}

async function answer(peer: string, admit: boolean): Promise<void> {
  set(S.answeredKnock(view, peer));
  try {
    await (admit ? backend.admit(peer) : backend.deny(peer));
  } catch (e) {
    showError(e);
  }
}

function chosen(): Settings {
  return {
    ...settings,
    displayName: $<HTMLInputElement>("display-name").value.trim(),
    video: $<HTMLSelectElement>("camera-select").value,
    audio: $<HTMLSelectElement>("mic-select").value,
    speaker: $<HTMLSelectElement>("speaker-select").value,
  };
}

async function remember(next: Settings): Promise<void> {
  settings = next;
  try {
    await backend.saveSettings(settings);
  } catch (e) {
    console.warn("settings not saved:", errorText(e));
  }
}

function openCallVideo(info: AppInfo): void {
  const problem = (text: string) => console.warn(text);
  const drawing = info.videoDrawing;
  remoteVideo ??= new VideoView($<HTMLCanvasElement>("remote-video"), info.remoteVideoUrl, problem, drawing);
  selfVideo ??= new VideoView($<HTMLCanvasElement>("self-video"), info.localVideoUrl, problem, drawing);
}

let appInfo: Awaited<ReturnType<typeof backend.appInfo>>;

async function startCall(): Promise<void> {
  const choice = chosen();
  await remember(choice);
  set(S.starting(view));
  openCallVideo(appInfo);
  try {
    const started = await backend.startCall(choice);
    set(S.hosted(view, started.inviteLink));
  } catch (e) {
    set(S.failed(errorText(e)));
  }
}

async function joinCall(link: string): Promise<void> {
  const choice = chosen();
  await remember(choice);
  set(S.starting(view));
  openCallVideo(appInfo);
  try {
    await backend.joinCall(link.trim(), choice);
  } catch (e) {
    set(S.failed(errorText(e)));
  }
}

function startPreview(): void {
  const spec = $<HTMLSelectElement>("camera-select").value;
  previewVideo ??= new VideoView($<HTMLCanvasElement>("preview"), localUrl, console.warn, appInfo.videoDrawing);
  const note = $("preview-note");
  backend
    .startPreview(spec)
    .then(() => {
      show(note, spec.startsWith("pattern"));
      text(note, "No camera found: the other person will see a test pattern. Turn your video off to send none.");
    })
    .catch((e) => {
      show(note, true);
      text(note, errorText(e));
    });
}

/** The pre-call check's camera preview and microphone meter, if the window can be seen. */
function startChecks(): void {
  if (document.hidden) return;
  startPreview();
  startMeter();
}

/** Lets the camera and microphone go. */
function stopChecks(): void {
  void backend.stopPreview();
  void backend.stopMicMeter();
}

function startMeter(): void {
  const note = $("mic-note");
  text(note, "");
  backend.startMicMeter($<HTMLSelectElement>("mic-select").value).catch((e) => {
    text(note, errorText(e));
  });
}

function showLevel(level: { rmsDbfs: number; peakDbfs: number; clipped: boolean } | null): void {
  const meter = $<HTMLMeterElement>("mic-level");
  const note = $("mic-note");
  if (!level) {
    meter.value = -60;
    text(note, "The microphone stopped.");
    return;
  }
  meter.value = Math.max(-60, level.rmsDbfs);
  meter.dataset.peak = String(level.peakDbfs);
  if (level.clipped) note.textContent = "Too loud: move away from the microphone.";
  else if (level.peakDbfs > -50) note.textContent = "";
}

function fillSelect(id: string, options: { value: string; label: string }[], selected: string): void {
  const select = $<HTMLSelectElement>(id);
  select.replaceChildren(
    ...options.map((o) => {
      const option = document.createElement("option");
      option.value = o.value;
      option.textContent = o.label;
      return option;
    }),
  );
  // A source chosen in the settings file but not on this machine's list (a test tone, a
  // file, no speaker) stays chosen, and shows what it is.
  if (selected && !options.some((o) => o.value === selected)) {
    const option = document.createElement("option");
    option.value = selected;
    option.textContent =
      SPECIAL_SOURCES[selected] ?? (selected.startsWith("pattern") ? `Test pattern (${selected.slice(8) || "720p"})` : selected);
    select.append(option);
  }
  if (options.some((o) => o.value === selected) || selected) select.value = selected;
}

const SPECIAL_SOURCES: Record<string, string> = {
  tone: "Test tone",
  speech: "Test speech",
  none: "No sound",
};

async function loadDevices(): Promise<void> {
  devices = await backend.devices();
  const cameras = devices.cameras.map((c) => ({ value: c.spec, label: c.label }));
  cameras.push({ value: "pattern:1280x720", label: "Test pattern (no camera)" });
  fillSelect("camera-select", cameras, settings.video);
  const mics = [{ value: "mic", label: "System default" }, ...devices.microphones.map((m) => ({ value: m.spec, label: m.label }))];
  if (devices.microphones.length === 0) mics.splice(0, 1, { value: "tone", label: "No microphone found" });
  fillSelect("mic-select", mics, settings.audio);
  const speakers = [{ value: "", label: "System default" }, ...devices.speakers.map((s) => ({ value: s.spec, label: s.label }))];
  fillSelect("speaker-select", speakers, settings.speaker);
  const problems = $("device-problems");
  show(problems, devices.problems.length > 0);
  problems.textContent = devices.problems.join(" ");
}

function applyTheme(): void {
  document.documentElement.dataset.theme = settings.theme;
}

function openSettings(): void {
  const form = $<HTMLFormElement>("settings-form");
  for (const [key, value] of Object.entries(settings)) {
    const field = form.elements.namedItem(key);
    if (field instanceof HTMLInputElement && field.type === "checkbox") field.checked = Boolean(value);
    else if (field instanceof HTMLInputElement || field instanceof HTMLSelectElement) field.value = String(value);
  }
  show($("settings-error"), false);
  $<HTMLDialogElement>("settings").showModal();
}

async function saveSettingsForm(): Promise<boolean> {
  const form = $<HTMLFormElement>("settings-form");
  const next = { ...settings } as Record<string, unknown>;
  for (const key of Object.keys(settings)) {
    const field = form.elements.namedItem(key);
    if (field instanceof HTMLInputElement && field.type === "checkbox") next[key] = field.checked;
    else if (field instanceof HTMLInputElement || field instanceof HTMLSelectElement) next[key] = field.value.trim();
  }
  try {
    await backend.saveSettings(next as unknown as Settings);
    settings = next as unknown as Settings;
    applyTheme();
    updateServerNote();
    void checkServer();
    return true;
  } catch (e) {
    const error = $("settings-error");
    error.textContent = errorText(e);
    show(error, true);
    return false;
  }
}

let serverCheckTurn = 0;

/** The pre-call check's look at the server: the link's, when one is in the join field, else
 * the one a hosted call would use. Only the newest answer is shown. */
async function checkServer(): Promise<void> {
  const link = $<HTMLInputElement>("join-link").value.trim();
  const turn = ++serverCheckTurn;
  const line = $("server-check");
  const showLine = (result: Parameters<typeof S.serverCheckLine>[0]) => {
    if (turn !== serverCheckTurn) return;
    const { level, text: words } = S.serverCheckLine(result, link !== "");
    text(line, words);
    line.classList.toggle("error", level === "error");
  };
  showLine(null);
  try {
    showLine({ ok: await backend.checkServer(settings, link || null) });
  } catch (e) {
    showLine({ error: errorText(e) });
  }
}

function updateServerNote(): void {
  $("server-note").textContent = settings.serverUrl
    ? `Rooms are created on ${settings.serverUrl}.`
    : "Rooms are created on the server built into this app (this computer only).";
}

function makeDraggable(el: HTMLElement): void {
  let start: { x: number; y: number; left: number; top: number } | null = null;
  const place = (left: number, top: number) => {
    const stage = el.parentElement!.getBoundingClientRect();
    el.style.left = `${Math.max(0, Math.min(stage.width - el.offsetWidth, left))}px`;
    el.style.top = `${Math.max(0, Math.min(stage.height - el.offsetHeight, top))}px`;
    el.style.right = "auto";
    el.style.bottom = "auto";
  };
  el.addEventListener("pointerdown", (e) => {
    start = { x: e.clientX, y: e.clientY, left: el.offsetLeft, top: el.offsetTop };
    el.setPointerCapture(e.pointerId);
  });
  el.addEventListener("pointermove", (e) => {
    if (start) place(start.left + e.clientX - start.x, start.top + e.clientY - start.y);
  });
  el.addEventListener("pointerup", () => (start = null));
  el.addEventListener("keydown", (e) => {
    const step = 24;
    const moves: Record<string, [number, number]> = {
      ArrowLeft: [-step, 0],
      ArrowRight: [step, 0],
      ArrowUp: [0, -step],
      ArrowDown: [0, step],
    };
    const move = moves[e.key];
    if (move) {
      e.preventDefault();
      place(el.offsetLeft + move[0], el.offsetTop + move[1]);
    }
  });
}

async function toggleMute(): Promise<void> {
  const muted = !view.muted;
  set({ ...view, muted });
  await backend.setMuted(muted).catch(() => set({ ...view, muted: !muted }));
}

async function toggleCamera(): Promise<void> {
  const camera = !view.camera;
  set({ ...view, camera });
  await backend.setCamera(camera).catch(() => set({ ...view, camera: !camera }));
}

function toggleChat(): void {
  set(S.toggledChat(view, !view.chatOpen));
  if (view.chatOpen) $("chat-input").focus();
}

function toggleStats(): void {
  const panel = $("stats-panel");
  panel.hidden = !panel.hidden;
  $("btn-stats").setAttribute("aria-expanded", String(!panel.hidden));
  renderStats();
}

function wire(): void {
  $("start-call").onclick = () => void startCall();
  $<HTMLFormElement>("join-form").onsubmit = (e) => {
    e.preventDefault();
    const link = $<HTMLInputElement>("join-link").value;
    if (link.trim()) void joinCall(link);
  };
  let linkTyped: ReturnType<typeof setTimeout> | undefined;
  $("join-link").oninput = () => {
    clearTimeout(linkTyped);
    linkTyped = setTimeout(() => void checkServer(), 400);
  };
  $("camera-select").onchange = () => startPreview();
  // The pre-call check's camera and microphone run only while someone can see them: a window
  // minimised or hidden on the home screen releases both (the camera's light goes off, and
  // the preview's work stops), and they come back when it is shown again.
  document.addEventListener("visibilitychange", () => {
    if (view.phase !== "home") return;
    if (document.hidden) stopChecks();
    else startChecks();
  });
  $("mic-select").onchange = () => startMeter();
  $("test-speaker").onclick = async () => {
    const note = $("speaker-note");
    text(note, "Playing a tone…");
    try {
      await backend.testSpeaker($<HTMLSelectElement>("speaker-select").value);
      text(note, "Did you hear a tone? If not, pick another speaker.");
    } catch (e) {
      text(note, errorText(e));
    }
  };
  $("copy-link").onclick = async () => {
    const input = $<HTMLInputElement>("invite-link");
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      $("copy-link").textContent = "Copied";
    } catch {
      document.execCommand("copy");
    }
  };
  const leave = () => void backend.hangUp().catch(() => set(S.initial()));
  $("cancel-lobby").onclick = leave;
  $("cancel-waiting").onclick = leave;
  $("btn-hangup").onclick = leave;
  $("btn-mute").onclick = () => void toggleMute();
  $("btn-camera").onclick = () => void toggleCamera();
  $("btn-chat").onclick = toggleChat;
  $("btn-stats").onclick = toggleStats;
  $("back-home").onclick = () => {
    $("copy-link").textContent = "Copy link";
    set(S.initial());
  };
  $<HTMLFormElement>("chat-form").onsubmit = async (e) => {
    e.preventDefault();
    const input = $<HTMLInputElement>("chat-input");
    const text = input.value;
    if (!text.trim()) return;
    try {
      const id = await backend.sendChat(text);
      input.value = "";
      set(S.sentChat(view, id, text));
    } catch (err) {
      showError(err);
    }
  };
  $<HTMLInputElement>("file-input").onchange = async (e) => {
    const input = e.target as HTMLInputElement;
    const file = input.files?.[0];
    input.value = "";
    if (!file) return;
    try {
      const id = await backend.sendFile(file);
      set(S.sendingFile(view, id, file.name, file.size));
    } catch (err) {
      showError(err);
    }
  };
  $("open-settings").onclick = openSettings;
  $<HTMLFormElement>("settings-form").onsubmit = async (e) => {
    const submitter = (e as SubmitEvent).submitter as HTMLButtonElement | null;
    if (submitter?.value !== "save") return;
    e.preventDefault();
    if (await saveSettingsForm()) $<HTMLDialogElement>("settings").close();
  };
  makeDraggable($("self-video"));

  document.addEventListener("keydown", (e) => {
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
    if (view.phase !== "in-call" && view.phase !== "connecting") return;
    if (e.ctrlKey && e.shiftKey && e.key.toLowerCase() === "h") {
      e.preventDefault();
      leave();
      return;
    }
    if (typing || e.ctrlKey || e.altKey || e.metaKey) return;
    const actions: Record<string, () => void> = {
      m: () => void toggleMute(),
      v: () => void toggleCamera(),
      c: toggleChat,
      s: toggleStats,
    };
    const action = actions[e.key.toLowerCase()];
    if (action) {
      e.preventDefault();
      action();
    }
  });

  // The timer and the "waiting for video" note tick once a second.
  setInterval(() => {
    if (view.phase === "in-call" && view.connectedAt) {
      $("call-timer").textContent = S.clock(Date.now() - view.connectedAt);
    }
    renderRemoteNote();
  }, 1000);
}

async function main(): Promise<void> {
  wire();
  appInfo = await backend.appInfo();
  localUrl = appInfo.localVideoUrl;
  try {
    settings = await backend.getSettings();
  } catch (e) {
    settings = {
      displayName: "",
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
      video: "",
      audio: "",
      speaker: "",
    };
    set({ ...view, notice: { level: "error", text: `Settings could not be read: ${errorText(e)}` } });
  }
  applyTheme();
  updateServerNote();
  $<HTMLInputElement>("display-name").value = settings.displayName;
  await backend.onCallEvent((event) => set(S.reduce(view, event, Date.now())));
  await backend.onMicLevel(showLevel);
  await loadDevices().catch((e) => console.warn(errorText(e)));
  startChecks();
  if (appInfo.launchLink) offerLink(appInfo.launchLink);
  await backend.onOpenLink(offerLink);
  void checkServer();
  render(view);
  document.body.dataset.ready = "true";
}

/** Opened from a link (at start-up, or by a later launch): offer it on the home screen;
 * joining stays the user's click. During a call it waits there for the call to end. */
function offerLink(link: string): void {
  $<HTMLInputElement>("join-link").value = link;
  void checkServer();
  if (view.phase === "home" || view.phase === "ended") {
    $("join-call").focus();
  } else {
    set({ ...view, notice: { level: "warning", text: "A call link was opened: it waits on the home screen for after this call." } });
  }
}

void main();
