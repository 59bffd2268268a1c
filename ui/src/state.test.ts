import { describe, expect, it } from "vitest";
import {
  type BackendEvent,
  type CallView,
  answeredKnock,
  banner,
  clock,
  hosted,
  initial,
  reduce,
  sentChat,
  starting,
  toggledChat,
} from "./state";

function run(view: CallView, events: BackendEvent[], now = 1000): CallView {
  return events.reduce((v, e) => reduce(v, e, now), view);
}

describe("a host's call", () => {
  it("goes lobby → knock → in call → ended", () => {
    let view = hosted(starting(initial()), "http://h/join/r#t");
    view = run(view, [{ kind: "joined", role: "host", state: "admitted", resumed: false }]);
    expect(view.phase).toBe("lobby");
    expect(view.inviteLink).toBe("http://h/join/r#t");

    view = run(view, [
      { kind: "knock", peer: "g1", name: "Pat" },
      { kind: "knock", peer: "g1", name: "Pat" },
    ]);
    expect(view.knocks).toEqual([{ peer: "g1", name: "Pat" }]);
    view = answeredKnock(view, "g1");
    expect(view.knocks).toEqual([]);

    view = run(view, [{ kind: "call-ready" }, { kind: "connected" }, { kind: "verification-code", code: "apple river" }], 5000);
    expect(view.phase).toBe("in-call");
    expect(view.connectedAt).toBe(5000);
    expect(view.sas).toBe("apple river");

    view = run(view, [{ kind: "ended", reason: "hung up" }], 65000);
    expect(view.phase).toBe("ended");
    expect(view.endReason).toBe("hung up");
    expect(clock(view.endedAt! - view.connectedAt!)).toBe("01:00");
    // Nothing moves an ended call.
    expect(run(view, [{ kind: "connected" }]).phase).toBe("ended");
  });

  it("returns to the lobby when the guest leaves", () => {
    let view = run(hosted(starting(initial()), "l"), [
      { kind: "joined", role: "host", state: "admitted", resumed: false },
      { kind: "call-ready" },
      { kind: "connected" },
      { kind: "peer-left", reason: "left the call" },
    ]);
    expect(view.phase).toBe("lobby");
    expect(view.notice?.text).toContain("left the call");
  });
});

describe("a guest's call", () => {
  it("waits, is admitted, connects", () => {
    let view = run(starting(initial()), [{ kind: "joined", role: "guest", state: "waiting", resumed: false }]);
    expect(view.phase).toBe("waiting");
    view = run(view, [{ kind: "admitted" }]);
    expect(view.phase).toBe("connecting");
    view = run(view, [{ kind: "call-ready" }, { kind: "connected" }]);
    expect(view.phase).toBe("in-call");
  });

  it("ends when the other person hangs up, and says so", () => {
    const view = run(starting(initial()), [
      { kind: "connected" },
      { kind: "peer-hung-up", reason: "hung up" },
      { kind: "ended", reason: "left" },
    ]);
    expect(view.phase).toBe("ended");
    expect(view.endReason).toBe("The other person hung up.");
  });

  it("is told when denied", () => {
    const view = run(starting(initial()), [
      { kind: "joined", role: "guest", state: "waiting", resumed: false },
      { kind: "ended", reason: "the host did not let you in: the host declined" },
    ]);
    expect(view.phase).toBe("ended");
    expect(view.endReason).toContain("did not let you in");
  });
});

describe("chat", () => {
  it("counts unread messages while the panel is closed and marks receipts", () => {
    let view = run(initial(), [{ kind: "chat", id: "a", text: "hello" }]);
    expect(view.unread).toBe(1);
    view = toggledChat(view, true);
    expect(view.unread).toBe(0);
    view = run(view, [{ kind: "chat", id: "b", text: "still here" }]);
    expect(view.unread).toBe(0);
    view = sentChat(view, "m1", "hi");
    expect(view.chat.at(-1)).toEqual({ id: "m1", text: "hi", mine: true, delivered: false });
    view = run(view, [{ kind: "chat-delivered", id: "m1" }]);
    expect(view.chat.at(-1)!.delivered).toBe(true);
  });

  it("keeps a receipt that arrives before the send command returns", () => {
    let view = run(initial(), [{ kind: "chat-delivered", id: "fast" }]);
    view = sentChat(view, "fast", "quick");
    expect(view.chat.at(-1)!.delivered).toBe(true);
    expect(view.earlyReceipts).toEqual([]);
  });
});

describe("files", () => {
  it("tracks a received file from progress to complete", () => {
    let view = run(initial(), [
      { kind: "transfer-progress", id: 7, incoming: true, done: 10, total: 100 },
      { kind: "file-received", id: 7, name: "scan.pdf", size: 100, verified: true },
    ]);
    expect(view.transfers).toHaveLength(1);
    expect(view.transfers[0]).toMatchObject({ name: "scan.pdf", state: "complete", verified: true, done: 100 });
  });
});

describe("the banner", () => {
  it("says reconnecting while media is lost and clears after", () => {
    let view = run(starting(initial()), [{ kind: "connected" }, { kind: "reconnecting" }]);
    expect(banner(view)?.text).toContain("Reconnecting");
    view = run(view, [{ kind: "reconnected" }]);
    expect(banner(view)).toBeNull();
  });

  it("shows the worst of server and media loss", () => {
    const view = run(starting(initial()), [
      { kind: "connected" },
      { kind: "server-reconnecting", attempt: 1, reason: "eof" },
      { kind: "reconnecting" },
    ]);
    expect(banner(view)?.level).toBe("error");
  });
});

describe("clock", () => {
  it("formats durations", () => {
    expect(clock(0)).toBe("00:00");
    expect(clock(61_500)).toBe("01:01");
    expect(clock(3_600_000 + 5_000)).toBe("1:00:05");
  });
});

describe("inviteNote", () => {
  it("says who can use the link", async () => {
    const { inviteNote } = await import("./state");
    expect(inviteNote("confer+http://127.0.0.1:4000/join/r#t")).toMatch(/this computer only/);
    expect(inviteNote("http://localhost:4000/join/r#t")).toMatch(/this computer only/);
    expect(inviteNote("http://[::1]:4000/join/r#t")).toMatch(/this computer only/);
    expect(inviteNote("http://192.168.1.20:4000/join/r#t")).toMatch(/on this network.*browser needs a secure/);
    expect(inviteNote("https://192.168.1.20:4000/join/r#t&cert=BwcH")).toMatch(/Confer app or a browser.*warns/);
    expect(inviteNote("https://confer.example.org/join/r#t")).toBe("");
    expect(inviteNote("confer://confer.example.org/join/r#t")).toBe("");
    expect(inviteNote(null)).toBe("");
    expect(inviteNote("not a link")).toBe("");
  });
});

describe("serverCheckLine", () => {
  it("says what the pre-call check found about the server, in words", async () => {
    const { serverCheckLine } = await import("./state");
    expect(serverCheckLine(null, false)).toEqual({ level: "pending", text: "Checking the connection to the server…" });
    expect(serverCheckLine(null, true).text).toMatch(/link's server/);
    expect(serverCheckLine({ ok: { server: "https://h", ms: 23.4 } }, false)).toEqual({
      level: "ok",
      text: "The server answered in 23 ms.",
    });
    expect(serverCheckLine({ ok: { server: "https://h", ms: 0.2 } }, true).text).toBe("The link's server answered in 1 ms.");
    expect(serverCheckLine({ ok: { server: "https://h", ms: 1800 } }, false).text).toMatch(/slow/);
    expect(serverCheckLine({ error: "cannot reach https://h: connection refused" }, true)).toEqual({
      level: "error",
      text: "The link's server cannot be reached: cannot reach https://h: connection refused",
    });
  });
});
