import { isUtf8 } from 'node:buffer';
import { detect as detectCharset } from 'jschardet';
import { ReaderError } from './errors';

/** Only the start of a file is inspected for binary content and legacy charsets. */
const SAMPLE_BYTES = 64 * 1024;
const MAX_CONTROL_SHARE = 0.1;

export interface DecodedText {
  text: string;
  /** WHATWG label of the encoding used. */
  encoding: string;
  /** True when invalid UTF-8 sequences were replaced with U+FFFD. */
  replacedInvalid: boolean;
}

/** C0 controls other than tab, LF, VT, FF, CR and ESC (ANSI colours in logs), plus DEL. */
function isControl(code: number): boolean {
  return (code < 0x20 && (code < 0x09 || code > 0x0d) && code !== 0x1b) || code === 0x7f;
}

/** NUL bytes, or too many control characters, in the first 64 KB. */
export function looksBinary(bytes: Uint8Array): boolean {
  const end = Math.min(bytes.length, SAMPLE_BYTES);
  let controls = 0;
  for (let i = 0; i < end; i++) {
    const b = bytes[i];
    if (b === 0) return true;
    if (isControl(b)) controls++;
  }
  return end > 0 && controls / end > MAX_CONTROL_SHARE;
}

function decodedLooksBinary(text: string): boolean {
  const end = Math.min(text.length, SAMPLE_BYTES / 2);
  let controls = 0;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 0) return true;
    if (isControl(c)) controls++;
  }
  return end > 0 && controls / end > MAX_CONTROL_SHARE;
}

type Utf16 = 'utf-16le' | 'utf-16be';

/** UTF-16 by byte order mark, or by the NUL pattern that mostly-ASCII UTF-16 text leaves. */
function detectUtf16(bytes: Uint8Array): { encoding: Utf16; bom: boolean } | null {
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) return { encoding: 'utf-16le', bom: true };
  if (bytes.length >= 2 && bytes[0] === 0xfe && bytes[1] === 0xff) return { encoding: 'utf-16be', bom: true };
  const end = Math.min(bytes.length, SAMPLE_BYTES) & ~1;
  if (end < 16) return null;
  let evenZeros = 0;
  let oddZeros = 0;
  for (let i = 0; i < end; i += 2) {
    if (bytes[i] === 0) evenZeros++;
    if (bytes[i + 1] === 0) oddZeros++;
  }
  const pairs = end / 2;
  if (oddZeros / pairs > 0.3 && evenZeros / pairs < 0.02) return { encoding: 'utf-16le', bom: false };
  if (evenZeros / pairs > 0.3 && oddZeros / pairs < 0.02) return { encoding: 'utf-16be', bom: false };
  return null;
}

/** Valid multi-byte sequences and invalid bytes, in one pass. */
function utf8Census(bytes: Uint8Array): { valid: number; invalid: number } {
  const n = bytes.length;
  let valid = 0;
  let invalid = 0;
  let i = 0;
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      else if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      else if (b === 0xf4) hi = 0x8f;
    } else {
      invalid++;
      i++;
      continue;
    }
    let ok = i + need < n && bytes[i + 1] >= lo && bytes[i + 1] <= hi;
    for (let k = 2; ok && k <= need; k++) ok = bytes[i + k] >= 0x80 && bytes[i + k] <= 0xbf;
    if (ok) {
      valid++;
      i += need + 1;
    } else {
      invalid++;
      i++;
    }
  }
  return { valid, invalid };
}

/**
 * Legacy charsets worth trusting the detector for: those where reading the bytes
 * as Windows-1252 would turn every letter into nonsense. Keys are detector names.
 */
const LEGACY_CHARSETS: Record<string, string> = {
  'windows-1251': 'windows-1251',
  'koi8-r': 'koi8-r',
  'koi8-u': 'koi8-u',
  'iso-8859-5': 'iso-8859-5',
  ibm866: 'ibm866',
  maccyrillic: 'x-mac-cyrillic',
  'windows-1253': 'windows-1253',
  'iso-8859-7': 'iso-8859-7',
  'windows-1255': 'windows-1255',
  'iso-8859-8': 'iso-8859-8',
  'windows-1256': 'windows-1256',
  'tis-620': 'windows-874',
  cp874: 'windows-874',
  shift_jis: 'shift_jis',
  cp932: 'shift_jis',
  'euc-jp': 'euc-jp',
  'euc-kr': 'euc-kr',
  cp949: 'euc-kr',
  gb2312: 'gbk',
  gbk: 'gbk',
  gb18030: 'gb18030',
  big5: 'big5',
};
const LEGACY_MIN_CONFIDENCE = 0.15;

function legacyEncoding(bytes: Uint8Array): string {
  const guess = detectCharset(bytes.subarray(0, SAMPLE_BYTES));
  const label = guess.encoding ? LEGACY_CHARSETS[guess.encoding.toLowerCase()] : undefined;
  return label && guess.confidence >= LEGACY_MIN_CONFIDENCE ? label : 'windows-1252';
}

/** Windows-1252 characters for bytes 0x80..0x9F (the rest of the charset is Latin-1). */
const CP1252_HIGH =
  '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

// Node's TextDecoder treats 'windows-1252' as ISO-8859-1, so the 0x80..0x9F range is mapped here.
function decodeWindows1252(bytes: Uint8Array): string {
  const latin1 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  return latin1.replace(/[\x80-\x9f]/g, (c) => CP1252_HIGH[c.charCodeAt(0) - 0x80]);
}

function decodeWith(encoding: string, bytes: Uint8Array, name: string): string {
  try {
    if (encoding === 'windows-1252') return decodeWindows1252(bytes);
    return new TextDecoder(encoding).decode(bytes);
  } catch (error) {
    if (error instanceof RangeError || (error as NodeJS.ErrnoException).code === 'ERR_STRING_TOO_LONG') {
      throw new ReaderError('TOO_LARGE', `${name} is too large to hold as text; split it into smaller files`);
    }
    throw error;
  }
}

/**
 * Bytes to text: BOM (UTF-8, UTF-16 LE/BE), else UTF-8 (lossy when most
 * multi-byte sequences are valid), else a legacy charset (Windows-1252 unless
 * the content is clearly in another one). Binary content => ReaderError BINARY.
 */
export function decodeBytes(bytes: Uint8Array, name: string): DecodedText {
  const utf16 = detectUtf16(bytes);
  if (utf16) {
    const text = decodeWith(utf16.encoding, bytes, name);
    if (decodedLooksBinary(text)) throw binaryError(name);
    return { text, encoding: utf16.encoding, replacedInvalid: false };
  }
  const hasUtf8Bom = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
  if (looksBinary(hasUtf8Bom ? bytes.subarray(3) : bytes)) throw binaryError(name);
  if (isUtf8(bytes)) return { text: decodeWith('utf-8', bytes, name), encoding: 'utf-8', replacedInvalid: false };
  const census = utf8Census(bytes);
  if (hasUtf8Bom || census.valid > census.invalid) {
    return { text: decodeWith('utf-8', bytes, name), encoding: 'utf-8', replacedInvalid: true };
  }
  const encoding = legacyEncoding(bytes);
  return { text: decodeWith(encoding, bytes, name), encoding, replacedInvalid: false };
}

export function binaryError(name: string): ReaderError {
  return new ReaderError('BINARY', `${name} looks like a binary file, not text; Folio can't read it`);
}

/** CRLF and lone CR become LF. */
export function normaliseNewlines(text: string): string {
  return text.indexOf('\r') === -1 ? text : text.replace(/\r\n?/g, '\n');
}

/** The charset an HTML/XHTML document declares in its first bytes (meta charset, http-equiv, XML declaration). */
export function declaredCharset(bytes: Uint8Array): string | null {
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 4096)).toString('latin1');
  const match =
    /<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)/i.exec(head) ?? /<\?xml[^>]+encoding\s*=\s*["']([\w.:-]+)["']/i.exec(head);
  if (!match) return null;
  try {
    return new TextDecoder(match[1]).encoding;
  } catch {
    return null;
  }
}

/** Markup bytes to text: a BOM wins, then a declared charset, then the same detection as plain text. */
export function decodeMarkup(bytes: Uint8Array, name: string): DecodedText {
  const hasBom =
    bytes.length >= 2 &&
    ((bytes[0] === 0xff && bytes[1] === 0xfe) ||
      (bytes[0] === 0xfe && bytes[1] === 0xff) ||
      (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf));
  const declared = hasBom ? null : declaredCharset(bytes);
  // A UTF-16 declaration in bytes readable as ASCII is wrong: trust the bytes.
  if (declared && !declared.startsWith('utf-16')) {
    if (looksBinary(bytes)) throw binaryError(name);
    return { text: decodeWith(declared, bytes, name), encoding: declared, replacedInvalid: false };
  }
  return decodeBytes(bytes, name);
}
