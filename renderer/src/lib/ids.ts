// Request ids the client picks for streamed requests (ask, summarize): letters and digits only.
export function newRequestId(prefix = 'r'): string {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
