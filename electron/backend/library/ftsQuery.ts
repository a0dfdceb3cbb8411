// Turns free user text into an FTS5 query that cannot be a syntax error: each word becomes a
// quoted string (so AND/OR/NEAR/column filters lose their meaning) and the words are ORed.

const STOPWORDS = new Set([
  'a', 'about', 'an', 'and', 'are', 'as', 'at', 'be', 'but', 'by', 'did', 'do', 'does', 'for',
  'from', 'had', 'has', 'have', 'how', 'i', 'if', 'in', 'into', 'is', 'it', 'its', 'me', 'my',
  'of', 'on', 'or', 'so', 'than', 'that', 'the', 'their', 'them', 'then', 'there', 'these',
  'they', 'this', 'those', 'to', 'was', 'we', 'were', 'what', 'when', 'where', 'which', 'who',
  'whom', 'why', 'will', 'with', 'you', 'your',
]);

/** Long pasted text would make a huge OR; the first distinct words are plenty for ranking. */
const MAX_TERMS = 64;

// Letters, digits and combining marks, as the unicode61 tokenizer sees words; everything
// else (quotes, *, ^, :, parentheses, +, -) separates words and never reaches FTS5.
const WORD = /[\p{L}\p{N}\p{M}]+/gu;

export function queryTerms(text: string): string[] {
  const words = [...new Set((text.normalize('NFC').toLowerCase().match(WORD) ?? []))];
  const content = words.filter((word) => !STOPWORDS.has(word));
  return (content.length > 0 ? content : words).slice(0, MAX_TERMS);
}

/** The FTS5 MATCH expression for `text`, or null when it has no searchable words. */
export function toFtsQuery(text: string): string | null {
  const terms = queryTerms(text);
  if (terms.length === 0) return null;
  // The terms hold no double quotes, so wrapping them needs no escaping.
  return terms.map((term) => `"${term}"`).join(' OR ');
}
