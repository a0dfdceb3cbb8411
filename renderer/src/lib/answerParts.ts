// Splits an answer into text and citation references: "[2]" becomes a reference to citation 2
// when the answer has one; other brackets stay text.
export type AnswerPart = { kind: 'text'; text: string } | { kind: 'cite'; n: number };

export function answerParts(answer: string, citationNumbers: ReadonlySet<number>): AnswerPart[] {
  const parts: AnswerPart[] = [];
  let last = 0;
  for (const match of answer.matchAll(/\[(\d{1,3})\]/g)) {
    const n = Number(match[1]);
    if (!citationNumbers.has(n)) continue;
    const at = match.index ?? 0;
    if (at > last) parts.push({ kind: 'text', text: answer.slice(last, at) });
    parts.push({ kind: 'cite', n });
    last = at + match[0].length;
  }
  if (last < answer.length) parts.push({ kind: 'text', text: answer.slice(last) });
  return parts;
}

/** Text to show for model output: control characters (other than line breaks and tabs) removed. */
export function displayText(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\ufffd]/g, '');
}
