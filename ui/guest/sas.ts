// The verification code both people read aloud, computed exactly as the native app does
// (crates/call/src/sas.rs): SHA-256 over a label and both DTLS fingerprints in sorted order,
// cut to six digits. A man in the middle has to swap the fingerprints, and then the two sides
// read different codes.

/** The `a=fingerprint:` value of an SDP (algorithm and hex), upper case; null if absent. */
export function fingerprint(sdp: string): string | null {
  for (const line of sdp.split(/\r?\n/)) {
    const value = line.trim();
    if (value.startsWith("a=fingerprint:")) {
      const f = value.slice("a=fingerprint:".length).trim().toUpperCase();
      return f.includes(" ") ? f : null;
    }
  }
  return null;
}

/** The code for a pair of fingerprints (order does not matter), as `123 456`. */
export async function sasCode(a: string, b: string): Promise<string> {
  const [lo, hi] = a <= b ? [a, b] : [b, a];
  const text = new TextEncoder().encode(`confer-sas-v1\0${lo}\0${hi}`);
  const digest = new DataView(await crypto.subtle.digest("SHA-256", text));
  const n = digest.getUint32(0) % 1_000_000;
  const pad = (x: number) => String(x).padStart(3, "0");
  return `${pad(Math.floor(n / 1000))} ${pad(n % 1000)}`;
}

/** The code of a call from the local and the remote SDP; null without both fingerprints. */
export async function sasFromSdp(local: string, remote: string): Promise<string | null> {
  const a = fingerprint(local);
  const b = fingerprint(remote);
  return a && b ? sasCode(a, b) : null;
}
