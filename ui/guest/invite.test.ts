import { describe, expect, it } from "vitest";
import { parseInvite } from "./invite";

const b64url = (s: string) => btoa(String.fromCharCode(...new TextEncoder().encode(s))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const token = (claims: object) => `${b64url('{"alg":"HS256"}')}.${b64url(JSON.stringify(claims))}.sig`;

describe("invite", () => {
  it("reads the claims from the fragment, consent line included", () => {
    const t = token({ room: "r1", role: "guest", exp: 2000, consent: "This call is recorded for the chart — not." });
    const invite = parseInvite(`#${t}`, 1000);
    expect("error" in invite).toBe(false);
    if ("error" in invite) return;
    expect(invite.token).toBe(t);
    expect(invite.claims.room).toBe("r1");
    expect(invite.claims.consent).toContain("—");
  });

  it("leaves the certificate hash after the token to the app", () => {
    const t = token({ room: "r1", role: "guest", exp: 2000 });
    const invite = parseInvite(`#${t}&cert=BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc`, 1000);
    expect(invite).toEqual({ token: t, claims: { room: "r1", role: "guest", exp: 2000 } });
  });

  it("explains a missing, damaged or expired invitation", () => {
    expect(parseInvite("", 0)).toEqual({ error: expect.stringContaining("incomplete") });
    expect(parseInvite("#abc", 0)).toEqual({ error: expect.stringContaining("damaged") });
    expect(parseInvite(`#${token({ room: "r", role: "guest", exp: 10 })}`, 11)).toEqual({
      error: expect.stringContaining("expired"),
    });
  });
});
