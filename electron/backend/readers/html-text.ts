import { compile, type FormatCallback } from 'html-to-text';
import { cleanLabel, type Heading } from './sections';

// Headings are tagged in the converter's output with Unicode noncharacters
// (never part of real text), then the tags are stripped and their offsets kept.
const HEADING_OPEN_BASE = 0xfdd0; // + level (1..6)
const HEADING_CLOSE = '\ufddf';
const TAG_PATTERN = /[\ufdd1-\ufdd6\ufddf]/g;
const NONCHARACTERS = /[\ufdd0-\ufdef]|&#(?:[xX]0*[fF][dD][dDeE][0-9a-fA-F]|0*(?:6497[6-9]|649[89]\d|6500[0-7]));?/g;

export interface HtmlText {
  text: string;
  /** h1..h6 in document order, with offsets into `text`. */
  headings: Heading[];
}

const formatTaggedHeading: FormatCallback = (elem, walk, builder, formatOptions) => {
  const level = Number(elem.name?.slice(1)) || 1;
  builder.openBlock({ leadingLineBreaks: formatOptions.leadingLineBreaks || 2 });
  builder.addLiteral(String.fromCharCode(HEADING_OPEN_BASE + level));
  walk(elem.children, builder);
  builder.addLiteral(HEADING_CLOSE);
  builder.closeBlock({ trailingLineBreaks: formatOptions.trailingLineBreaks || 2 });
};

const headingSelectors = [1, 2, 3, 4, 5, 6].map((level) => ({
  selector: `h${level}`,
  format: 'taggedHeading',
  options: { leadingLineBreaks: 2, trailingLineBreaks: 2 },
}));

let converter: ((html: string) => string) | null = null;

function convert(html: string): string {
  converter ??= compile({
    wordwrap: false,
    limits: { maxInputLength: Number.MAX_SAFE_INTEGER },
    formatters: { taggedHeading: formatTaggedHeading },
    selectors: [
      { selector: 'a', options: { ignoreHref: true } },
      { selector: 'img', format: 'skip' },
      { selector: 'script', format: 'skip' },
      { selector: 'style', format: 'skip' },
      { selector: 'svg', format: 'skip' },
      { selector: 'table', format: 'dataTable', options: { uppercaseHeaderCells: false, maxColumnWidth: 200 } },
      { selector: 'ul', options: { itemPrefix: ' - ' } },
      ...headingSelectors,
    ],
  });
  return converter(html);
}

/** Plain text of an HTML document or fragment, with its headings located in the text. */
export function htmlToText(html: string): HtmlText {
  const tagged = convert(html.replace(NONCHARACTERS, ''));
  const pieces: string[] = [];
  const headings: Heading[] = [];
  const open: { level: number; start: number; piece: number }[] = [];
  let length = 0;
  let last = 0;
  for (const match of tagged.matchAll(TAG_PATTERN)) {
    const index = match.index!;
    pieces.push(tagged.slice(last, index));
    length += index - last;
    last = index + 1;
    if (match[0] === HEADING_CLOSE) {
      const heading = open.pop();
      if (!heading) continue;
      const raw = pieces.slice(heading.piece).join('');
      const label = cleanLabel(raw);
      if (label) headings.push({ label, level: heading.level, charStart: heading.start + raw.search(/\S/) });
    } else {
      open.push({ level: match[0].charCodeAt(0) - HEADING_OPEN_BASE, start: length, piece: pieces.length });
    }
  }
  pieces.push(tagged.slice(last));
  headings.sort((a, b) => a.charStart - b.charStart);
  return { text: pieces.join(''), headings };
}

/** Text of the document's <title>, if any. */
export function htmlTitle(html: string): string | null {
  const match = /<title[^>]*>([\s\S]*?)<\/title\s*>/i.exec(html.slice(0, 65536));
  if (!match) return null;
  const title = cleanLabel(htmlToText(`<p>${match[1]}</p>`).text);
  return title || null;
}
