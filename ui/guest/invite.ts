// The invitation in the page's address: `/join/<room>#<guest token>`. The token stays in the
// fragment, which the browser never sends to a server; its claims (read, not verified: the
// server verifies) tell the page what to show before joining.

export interface InviteClaims {
  room: string;
  role: "host" | "guest";
  /** Expiry, unix seconds. */
  exp: number;
  /** A line the host asks the guest to agree to before joining. */
  consent?: string;
}

export interface Invite {
  token: string;
  claims: InviteClaims;
}

function base64UrlDecode(part: string): string {
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
  const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The invitation of `hash` (with or without `#`) at `nowS`, or what is wrong with it, in words.
 * What follows the token after `&` is for others (`&cert=`, the server's certificate hash the
 * Confer app checks; the browser has checked the certificate its own way). */
export function parseInvite(hash: string, nowS: number): Invite | { error: string } {
  const token = decodeURIComponent(hash.replace(/^#/, "").split("&")[0]).trim();
  if (!token) {
    return { error: "This link is incomplete: the part after # is missing. Ask for the full invitation link." };
  }
  const parts = token.split(".");
  let claims: InviteClaims;
  try {
    if (parts.length !== 3) throw new Error("not a token");
    claims = JSON.parse(base64UrlDecode(parts[1]));
    if (typeof claims.room !== "string" || typeof claims.exp !== "number") throw new Error("claims");
  } catch {
    return { error: "This link is damaged: the invitation in it cannot be read. Ask for the link again." };
  }
  if (claims.exp <= nowS) {
    const when = new Date(claims.exp * 1000).toLocaleString();
    return { error: `This invitation expired (${when}). Ask the person who invited you for a new link.` };
  }
  return { token, claims };
}
