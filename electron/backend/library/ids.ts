// Short random ids: lowercase letters and digits only, so they are safe in URLs and file
// names and never look like a command-line flag.

import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
export const ID_LENGTH = 10;

export function newId(length = ID_LENGTH): string {
  let id = '';
  while (id.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 252 = 7 * 36: dropping larger bytes keeps every character equally likely.
      if (byte < 252 && id.length < length) id += ALPHABET[byte % ALPHABET.length];
    }
  }
  return id;
}
