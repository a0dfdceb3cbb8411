import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReaderError, detectFormat, lineOfOffset, readDocument, type ReadResult, type Section } from '../backend/readers';
import { buildDocx, buildEpub } from './fixtures/office-builders';
import { buildPdf } from './fixtures/pdf-builder';
import { buildZip } from './fixtures/zip-builder';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'folio-readers-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
  return path;
}

async function readerError(promise: Promise<unknown>): Promise<ReaderError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ReaderError);
    return error as ReaderError;
  }
  throw new Error('expected a ReaderError');
}

async function expectCode(promise: Promise<unknown>, code: ReaderError['code'], fileName: string): Promise<ReaderError> {
  const error = await readerError(promise);
  expect(error.code).toBe(code);
  expect(error.message).toContain(fileName);
  return error;
}

function labels(result: ReadResult): string[] {
  return result.sections.map((s) => s.label);
}

function sectionNamed(result: ReadResult, label: string): Section {
  const section = result.sections.find((s) => s.label === label);
  if (!section) throw new Error(`no section ${label}: ${labels(result).join(' | ')}`);
  return section;
}

/** Sections are ordered, in range, and do not overlap at the same level. */
function expectWellFormed(result: ReadResult): void {
  let previousStart = 0;
  const lastEndAtLevel = new Map<number, number>();
  for (const s of result.sections) {
    expect(s.charStart).toBeGreaterThanOrEqual(previousStart);
    expect(s.charEnd).toBeGreaterThanOrEqual(s.charStart);
    expect(s.charEnd).toBeLessThanOrEqual(result.text.length);
    expect(s.charStart).toBeGreaterThanOrEqual(lastEndAtLevel.get(s.level) ?? 0);
    lastEndAtLevel.set(s.level, s.charEnd);
    previousStart = s.charStart;
  }
}

describe('plain text', () => {
  it('reads UTF-8 and normalises CRLF and CR line ends', async () => {
    const result = await readDocument(file('notes.txt', 'first line\r\nsecond line\rthird line\n'));
    expect(result).toMatchObject({ title: 'notes', format: 'text', pages: [], sections: [], warnings: [] });
    expect(result.text).toBe('first line\nsecond line\nthird line\n');
    expect(result.sourceBytes).toBe(Buffer.byteLength('first line\r\nsecond line\rthird line\n'));
  });

  it('reads UTF-16 LE and BE with a byte order mark', async () => {
    const text = 'Grüße, 世界 — ok\r\n';
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
    const be = Buffer.from(le).swap16();
    expect((await readDocument(file('le.txt', le))).text).toBe('Grüße, 世界 — ok\n');
    expect((await readDocument(file('be.txt', be))).text).toBe('Grüße, 世界 — ok\n');
  });

  it('reads UTF-16 LE without a byte order mark', async () => {
    const bytes = Buffer.from('A plain UTF-16 file without a BOM, as some tools write it.\n', 'utf16le');
    expect((await readDocument(file('nobom.txt', bytes))).text).toBe('A plain UTF-16 file without a BOM, as some tools write it.\n');
  });

  it('reads Latin-1 / Windows-1252 when the bytes are not UTF-8', async () => {
    const bytes = Buffer.from('Le c\xe6ur a ses raisons. Caf\xe9, na\xefve, \xe9l\xe8ve \x96 \x80 5.\n', 'latin1');
    const result = await readDocument(file('latin1.txt', bytes));
    expect(result.text).toBe('Le cæur a ses raisons. Café, naïve, élève – € 5.\n');
    expect(result.warnings).toEqual([]);
  });

  it('reads a legacy Cyrillic file as Windows-1251', async () => {
    const sentence = 'Съешь же ещё этих мягких французских булок, да выпей чаю. ';
    const table = new Map<string, number>();
    const decoder = new TextDecoder('windows-1251');
    for (let b = 0x80; b <= 0xff; b++) table.set(decoder.decode(Uint8Array.of(b)), b);
    const bytes = Buffer.from([...sentence.repeat(20)].map((c) => (c.charCodeAt(0) < 0x80 ? c.charCodeAt(0) : table.get(c)!)));
    expect((await readDocument(file('cp1251.txt', bytes))).text).toBe(sentence.repeat(20));
  });

  it('replaces invalid bytes in a mostly UTF-8 file with U+FFFD', async () => {
    const bytes = Buffer.concat([Buffer.from('naïve café '), Buffer.from([0xff, 0xc3]), Buffer.from(' ok — done\n')]);
    const result = await readDocument(file('mixed.txt', bytes));
    expect(result.text).toBe('naïve café \ufffd\ufffd ok — done\n');
    expect(result.warnings.join(' ')).toMatch(/not valid UTF-8/);
  });

  it('finds chapters of a plain-text book and skips its table of contents', async () => {
    const para = (n: number): string => `Paragraph ${n} of the story goes on for a while. `.repeat(8).trim();
    const text = [
      'A Tale in Three Chapters',
      'Contents',
      'CHAPTER I. Down the Rabbit-Hole',
      'CHAPTER II. The Pool of Tears',
      'CHAPTER III. A Caucus-Race',
      para(0),
      'CHAPTER I.\nDown the Rabbit-Hole',
      para(1),
      para(2),
      'CHAPTER II.\nThe Pool of Tears',
      para(3),
      'Chapter III.\nA Caucus-Race',
      para(4),
      'The chapter 4 of this is only mentioned in passing.',
    ].join('\n\n');
    const result = await readDocument(file('book.txt', text));
    expect(labels(result)).toEqual([
      'CHAPTER I. Down the Rabbit-Hole',
      'CHAPTER II. The Pool of Tears',
      'Chapter III. A Caucus-Race',
    ]);
    expectWellFormed(result);
    const first = sectionNamed(result, 'CHAPTER I. Down the Rabbit-Hole');
    expect(first).toMatchObject({ kind: 'chapter', level: 1 });
    expect(result.text.slice(first.charStart)).toMatch(/^CHAPTER I\.\nDown the Rabbit-Hole\n\nParagraph 1/);
    expect(result.text.slice(first.charEnd)).toMatch(/^CHAPTER II\.\n/);
    expect(result.sections[2].charEnd).toBe(result.text.length);
  });

  it('rejects binary, empty and missing files', async () => {
    const binary = Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7919) % 256));
    await expectCode(readDocument(file('blob.dat', binary)), 'BINARY', 'blob.dat');
    await expectCode(readDocument(file('empty.txt', '')), 'EMPTY', 'empty.txt');
    await expectCode(readDocument(file('blank.txt', ' \n\t\r\n  ')), 'EMPTY', 'blank.txt');
    await expectCode(readDocument(join(dir, 'missing.txt')), 'NOT_FOUND', 'missing.txt');
  });

  it('refuses files over maxBytes', async () => {
    const error = await expectCode(readDocument(file('big.log', 'x'.repeat(5000)), { maxBytes: 1024 }), 'TOO_LARGE', 'big.log');
    expect(error.message).toMatch(/4\.9 KB.*1\.0 KB/);
  });

  it('names formats it recognises but cannot read', async () => {
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64)]);
    const error = await expectCode(readDocument(file('photo.png', png)), 'UNSUPPORTED', 'photo.png');
    expect(error.message).toMatch(/image/);
    await expectCode(readDocument(file('sheet.xlsx', buildZip([{ name: 'a', data: 'b' }]))), 'UNSUPPORTED', 'sheet.xlsx');
  });
});

describe('markdown', () => {
  const source = [
    '---',
    'title: "Front Title"',
    'layout: page',
    '---',
    '',
    'Intro paragraph.',
    '',
    '# Guide',
    '',
    'Some text.',
    '',
    'Setext Heading',
    '--------------',
    '',
    '```sh',
    '# not a heading',
    '```',
    '',
    '## Sub ##',
    '',
    '- item',
    '---',
    '',
    '### Deep',
    '',
    'Top Again',
    '=========',
    '',
    'tail',
    '',
  ].join('\r\n');

  it('finds ATX and setext headings with their levels and extents', async () => {
    const result = await readDocument(file('guide.md', source));
    expect(result.format).toBe('markdown');
    expect(result.title).toBe('Front Title');
    expect(result.text).toBe(source.replace(/\r\n/g, '\n'));
    expect(result.sections.map((s) => [s.label, s.level, s.kind])).toEqual([
      ['Guide', 1, 'heading'],
      ['Setext Heading', 2, 'heading'],
      ['Sub', 2, 'heading'],
      ['Deep', 3, 'heading'],
      ['Top Again', 1, 'heading'],
    ]);
    expectWellFormed(result);
    const [guide, setext, sub, deep, top] = result.sections;
    expect(result.text.slice(guide.charStart)).toMatch(/^# Guide\n/);
    expect(result.text.slice(setext.charStart)).toMatch(/^Setext Heading\n---/);
    expect(result.text.slice(sub.charStart)).toMatch(/^## Sub ##/);
    expect(result.text.slice(deep.charStart)).toMatch(/^### Deep/);
    expect(result.text.slice(top.charStart)).toMatch(/^Top Again\n===/);
    expect(guide.charEnd).toBe(top.charStart);
    expect(setext.charEnd).toBe(sub.charStart);
    expect(sub.charEnd).toBe(top.charStart);
    expect(deep.charEnd).toBe(top.charStart);
    expect(top.charEnd).toBe(result.text.length);
  });

  it('takes the title from the first level-1 heading without front matter', async () => {
    const result = await readDocument(file('plain.markdown', 'intro\n\n## Minor\n\n# Main Title\n\nbody\n'));
    expect(result.title).toBe('Main Title');
    expect(labels(result)).toEqual(['Minor', 'Main Title']);
  });
});

describe('html', () => {
  it('converts to text with sections from h1..h3 and the <title>', async () => {
    const html =
      '<!DOCTYPE html><html><head><meta charset="windows-1252"><title>Field &amp; Notes</title>' +
      '<style>p { color: red }</style><script>var x = 1;</script></head><body>' +
      '<h1>Birds</h1><p>See <a href="https://example.com/owls">the site</a> for more.</p>' +
      '<h2>Owls</h2><p>They hoot.</p><h4>Minor note</h4><p>Tiny.</p>' +
      '<h1>Caf\xe9s</h1><p>Espresso.</p></body></html>';
    const result = await readDocument(file('notes.html', Buffer.from(html, 'latin1')));
    expect(result.format).toBe('html');
    expect(result.title).toBe('Field & Notes');
    expect(result.text).toContain('See the site for more.');
    expect(result.text).not.toContain('example.com');
    expect(result.text).not.toContain('color: red');
    expect(result.text).not.toContain('var x');
    expect(result.text).toContain('Minor note');
    expect(labels(result)).toEqual(['Birds', 'Owls', 'Cafés']);
    expectWellFormed(result);
    for (const s of result.sections) expect(result.text.slice(s.charStart).startsWith(s.label)).toBe(true);
    expect(result.sections[0].charEnd).toBe(result.sections[2].charStart);
  });
});

describe('docx', () => {
  it('reads paragraphs and headings', async () => {
    const bytes = buildDocx([
      { text: 'Quarterly Report', style: 'Title' },
      { text: 'Introduction', style: 'Heading1' },
      { text: 'This report covers the quarter.' },
      { text: 'Scope', style: 'Heading2' },
      { text: 'Only the northern region.' },
      { text: 'Results', style: 'Heading1' },
      { text: 'Sales went up.' },
    ]);
    const result = await readDocument(file('report.docx', bytes));
    expect(result.format).toBe('docx');
    expect(result.title).toBe('Quarterly Report');
    expect(result.text).toContain('This report covers the quarter.');
    expect(result.sections.map((s) => [s.label, s.level])).toEqual([
      ['Quarterly Report', 1],
      ['Introduction', 1],
      ['Scope', 2],
      ['Results', 1],
    ]);
    expectWellFormed(result);
    for (const s of result.sections) expect(result.text.slice(s.charStart).startsWith(s.label)).toBe(true);
    expect(sectionNamed(result, 'Introduction').charEnd).toBe(sectionNamed(result, 'Results').charStart);
    expect(result.text.slice(sectionNamed(result, 'Scope').charStart, sectionNamed(result, 'Scope').charEnd)).toContain(
      'Only the northern region.',
    );
  });

  it('rejects damaged and password-protected files', async () => {
    await expectCode(readDocument(file('broken.docx', Buffer.from('not a zip at all'))), 'CORRUPT', 'broken.docx');
    await expectCode(readDocument(file('nodoc.docx', buildZip([{ name: 'x.txt', data: 'x' }]))), 'CORRUPT', 'nodoc.docx');
    const cfb = Buffer.concat([Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]), Buffer.alloc(504)]);
    await expectCode(readDocument(file('locked.docx', cfb)), 'ENCRYPTED', 'locked.docx');
  });
});

describe('epub', () => {
  const chapters = [
    { id: 'cover', file: 'cover.xhtml', body: '<img src="cover.jpg" alt=""/>' },
    {
      id: 'c1',
      file: 'c1.xhtml',
      body: '<h1>Chapter 1</h1><p>It was a dark and <a href="c2.xhtml">stormy</a> night.</p>',
      tocTitle: 'Chapter 1: The Storm',
    },
    { id: 'c1b', file: 'c1b.xhtml', body: '<p>The storm went on.</p>' },
    { id: 'c2', file: 'c2.xhtml', body: '<h2>The Calm</h2><p>Morning came.</p>' },
    { id: 'c3', file: 'c3.xhtml', body: '<p>Questions were asked.</p>', tocTitle: 'Q & A' },
  ];

  function checkBook(result: ReadResult): void {
    expect(result.format).toBe('epub');
    expect(result.title).toBe('Tiny Book');
    expect(labels(result)).toEqual(['Chapter 1: The Storm', 'The Calm', 'Q & A']);
    expectWellFormed(result);
    const [storm, calm, qa] = result.sections;
    expect(result.text.slice(storm.charStart)).toMatch(/^Chapter 1\n\nIt was a dark and stormy night\./);
    // The untitled file after chapter 1 continues it.
    expect(result.text.slice(storm.charStart, storm.charEnd)).toMatch(/The storm went on\.$/);
    expect(result.text.slice(calm.charStart)).toMatch(/^The Calm\n\nMorning came\./);
    expect(result.text.slice(qa.charStart, qa.charEnd)).toBe('Questions were asked.');
    expect(qa.charEnd).toBe(result.text.length);
    expect(result.sections.every((s) => s.kind === 'chapter' && s.level === 1)).toBe(true);
  }

  it('reads chapters in spine order with titles from the navigation document', async () => {
    checkBook(await readDocument(file('book3.epub', buildEpub({ title: 'Tiny Book', chapters, toc: 'nav' }))));
  });

  it('reads titles from an NCX table of contents', async () => {
    checkBook(await readDocument(file('book2.epub', buildEpub({ title: 'Tiny Book', chapters, toc: 'ncx' }))));
  });

  it('rejects damaged books and books with DRM', async () => {
    const good = buildEpub({ title: 'Tiny Book', chapters, toc: 'both' });
    await expectCode(readDocument(file('cut.epub', good.subarray(0, good.length - 40))), 'CORRUPT', 'cut.epub');
    await expectCode(readDocument(file('junk.epub', Buffer.from('PK\x03\x04 this is not really a zip'))), 'CORRUPT', 'junk.epub');
    await expectCode(readDocument(file('nomime.epub', buildZip([{ name: 'a.txt', data: 'a' }]))), 'CORRUPT', 'nomime.epub');
    const encryption =
      '<?xml version="1.0"?><encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#">' +
      '<enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>' +
      '<enc:CipherData><enc:CipherReference URI="OEBPS/c1.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>';
    const drm = buildEpub({ title: 'Tiny Book', chapters, extraFiles: [{ name: 'META-INF/encryption.xml', data: encryption }] });
    await expectCode(readDocument(file('drm.epub', drm)), 'ENCRYPTED', 'drm.epub');
  });
});

describe('pdf', () => {
  const pages = [
    {
      texts: [
        { text: 'Chapter One', x: 72, y: 720, size: 18 },
        { text: 'Hello', x: 72, y: 690 },
        { text: 'world', x: 108, y: 690 },
        { text: 'Second line', x: 72, y: 675 },
      ],
    },
    {
      texts: [
        { text: 'Page two text', x: 72, y: 720 },
        { text: 'Section 1.1', x: 72, y: 400, size: 14 },
        { text: 'Body of the section', x: 72, y: 384 },
      ],
    },
    { texts: [{ text: 'Chapter Two', x: 72, y: 720, size: 18 }, { text: 'The end.', x: 72, y: 690 }] },
    { rectangle: true },
  ];
  const outline = [
    { title: 'Chapter One', page: 0, children: [{ title: 'Section 1.1', page: 1, top: 416, named: true }] },
    { title: 'Chapter Two', page: 2, top: 740 },
  ];

  it('reads pages, their offsets and the outline', async () => {
    const result = await readDocument(file('paper.pdf', buildPdf({ pages, outline, title: 'A Small Paper' })));
    expect(result.format).toBe('pdf');
    expect(result.title).toBe('A Small Paper');
    expect(result.pages.map((p) => p.page)).toEqual([1, 2, 3, 4]);
    const [p1, p2, p3, p4] = result.pages.map((p) => p.charStart);
    expect(p1).toBe(0);
    expect(result.text.slice(p1, p2)).toBe('Chapter One\n\nHello world\nSecond line\n\n');
    expect(result.text.slice(p2)).toMatch(/^Page two text\n/);
    expect(result.text.slice(p3)).toMatch(/^Chapter Two\n/);
    expect(p4).toBe(result.text.length);
    expect(result.warnings).toEqual(['page 4 has no text (scanned images?)']);

    expect(result.sections.map((s) => [s.label, s.level, s.kind])).toEqual([
      ['Chapter One', 1, 'chapter'],
      ['Section 1.1', 2, 'heading'],
      ['Chapter Two', 1, 'chapter'],
    ]);
    expectWellFormed(result);
    const [one, sub, two] = result.sections;
    expect(one.charStart).toBe(p1);
    expect(result.text.slice(sub.charStart)).toMatch(/^Section 1\.1\nBody of the section/);
    expect(two.charStart).toBe(p3);
    expect(one.charEnd).toBe(p3);
    expect(sub.charEnd).toBe(p3);
    expect(two.charEnd).toBe(result.text.length);
  });

  it('rejects image-only, encrypted and damaged PDFs', async () => {
    const scan = await expectCode(
      readDocument(file('scan.pdf', buildPdf({ pages: [{ rectangle: true }, { rectangle: true }] }))),
      'NO_TEXT',
      'scan.pdf',
    );
    expect(scan.message).toMatch(/no text layer/);
    const locked = buildPdf({ pages: [{ texts: [{ text: 'secret', x: 72, y: 700 }] }], encrypted: true });
    await expectCode(readDocument(file('locked.pdf', locked)), 'ENCRYPTED', 'locked.pdf');
    await expectCode(readDocument(file('junk.pdf', 'this is not a pdf file at all')), 'CORRUPT', 'junk.pdf');
  });
});

describe('code', () => {
  let root: string;

  beforeAll(() => {
    root = join(dir, 'project');
    const put = (rel: string, content: string | Uint8Array): void => {
      mkdirSync(join(root, rel, '..'), { recursive: true });
      writeFileSync(join(root, rel), content);
    };
    put('.git/info/exclude', 'secret.txt\n');
    put('.git/HEAD', 'ref: refs/heads/main\n');
    put('.gitignore', '*.log\nbuild-output/\n!keep.log\n');
    put('README.md', '# Project\n');
    put('keep.log', 'kept despite *.log\n');
    put('debug.log', 'ignored\n');
    put('secret.txt', 'excluded by .git/info/exclude\n');
    put('crlf.txt', 'one\r\ntwo\r\n');
    put('empty.txt', '');
    put('src/a.ts', 'const a = 1;\nconst b = 2;\nexport const TARGET = a + b;\n');
    put('src/.gitignore', 'generated.ts\n');
    put('src/generated.ts', 'ignored by the nested .gitignore\n');
    put('src/lib/b.py', 'def f():\n    return 1');
    put('build-output/x.txt', 'ignored folder\n');
    put('node_modules/pkg/index.js', 'module.exports = 1;\n');
    put('dist/bundle.js', 'built\n');
    put('logo.png', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0]));
    put('data.xyz', Buffer.from([1, 2, 0, 0, 3, 4, 0, 9]));
    put('package-lock.json', '{}\n');
    put('app.min.js', 'var a=1;\n');
    put('huge.txt', 'x'.repeat(1024 * 1024 + 1));
    symlinkSync('.', join(root, 'loop'));
    symlinkSync('src/a.ts', join(root, 'link-a.ts'));
  });

  it('reads a folder, honouring .gitignore files and skipping what is not source', async () => {
    const result = await readDocument(root);
    expect(result.format).toBe('code');
    expect(result.title).toBe('project');
    expect(result.sections.map((s) => s.path)).toEqual([
      '.gitignore',
      'README.md',
      'crlf.txt',
      'keep.log',
      'link-a.ts',
      'src/.gitignore',
      'src/a.ts',
      'src/lib/b.py',
    ]);
    expect(result.sections.every((s) => s.kind === 'file' && s.level === 1 && s.label === s.path)).toBe(true);
    expectWellFormed(result);
    for (const s of result.sections) expect(result.text.slice(s.charStart).startsWith(`=== ${s.path} ===\n`)).toBe(true);
    for (const absent of ['ignored', 'excluded', 'module.exports', 'built', 'var a=1']) expect(result.text).not.toContain(absent);
    expect(result.text).toContain('=== crlf.txt ===\none\ntwo\n');

    const warnings = result.warnings.join('\n');
    expect(warnings).toMatch(/skipped 2 binary files \(data\.xyz, logo\.png\)/);
    expect(warnings).toMatch(/skipped 2 generated or minified files/);
    expect(warnings).toMatch(/skipped 1 file over 1\.0 MB \(huge\.txt\)/);
    expect(warnings).toMatch(/skipped 1 symbolic link to a folder \(loop\)/);
  });

  it('maps offsets to line numbers within a file', async () => {
    const result = await readDocument(root);
    const a = sectionNamed(result, 'src/a.ts');
    const target = result.text.indexOf('TARGET', a.charStart);
    expect(lineOfOffset(result, a, target)).toBe(3);
    expect(lineOfOffset(result, a, a.charStart)).toBe(1);
    expect(lineOfOffset(result, a, a.charStart + '=== src/a.ts ===\n'.length)).toBe(1);
    expect(lineOfOffset(result, a, result.text.indexOf('const b', a.charStart))).toBe(2);
    expect(lineOfOffset(result, a, a.charEnd)).toBe(3);
    const b = sectionNamed(result, 'src/lib/b.py');
    expect(lineOfOffset(result, b, result.text.indexOf('return', b.charStart))).toBe(2);
  });

  it('reads a single source file as one section', async () => {
    const result = await readDocument(file('tool.py', 'import sys\n\nprint(sys.argv)\n'));
    expect(result).toMatchObject({ format: 'code', title: 'tool.py' });
    expect(result.text).toBe('=== tool.py ===\nimport sys\n\nprint(sys.argv)\n');
    expect(result.sections).toEqual([
      { label: 'tool.py', kind: 'file', level: 1, charStart: 0, charEnd: result.text.length, path: 'tool.py' },
    ]);
    expect(lineOfOffset(result, result.sections[0], result.text.indexOf('print'))).toBe(3);
  });

  it('rejects a folder without readable files', async () => {
    mkdirSync(join(dir, 'nothing', 'node_modules'), { recursive: true });
    writeFileSync(join(dir, 'nothing', 'node_modules', 'x.js'), 'x\n');
    writeFileSync(join(dir, 'nothing', 'pic.png'), Buffer.from([0x89, 0x50]));
    const error = await expectCode(readDocument(join(dir, 'nothing')), 'EMPTY', 'nothing');
    expect(error.message).toMatch(/skipped 1 binary file/);
  });
});

describe('detectFormat', () => {
  const none = Buffer.alloc(0);
  it('goes by extension, then by content', () => {
    expect(detectFormat('a/README.md', none)).toBe('markdown');
    expect(detectFormat('x.PDF', none)).toBe('pdf');
    expect(detectFormat('page.xhtml', none)).toBe('html');
    expect(detectFormat('main.rs', none)).toBe('code');
    expect(detectFormat('Makefile', none)).toBe('code');
    expect(detectFormat('CMakeLists.txt', none)).toBe('code');
    expect(detectFormat('server.log', none)).toBe('text');
    expect(detectFormat('old.doc', none)).toBeNull();
    expect(detectFormat('download', Buffer.from('%PDF-1.7\n'))).toBe('pdf');
    expect(detectFormat('download', Buffer.from('PK\x03\x04' + '\0'.repeat(26) + 'mimetypeapplication/epub+zip'))).toBe('epub');
    expect(detectFormat('download', Buffer.from('PK\x03\x04 other zip'))).toBeNull();
    expect(detectFormat('page', Buffer.from('  <!DOCTYPE html><html>'))).toBe('html');
    expect(detectFormat('run', Buffer.from('#!/bin/sh\necho hi\n'))).toBe('code');
    expect(detectFormat('image', Buffer.from([0xff, 0xd8, 0xff, 0xe0]))).toBeNull();
    expect(detectFormat('notes', Buffer.from('hello'))).toBe('text');
  });
});

describe('cancellation', () => {
  const isAbort = (error: unknown): boolean => error instanceof Error && error.name === 'AbortError';

  it('stops when the signal has already fired', async () => {
    const controller = new AbortController();
    controller.abort();
    const path = file('abort.txt', 'some text\n');
    await expect(readDocument(path, { signal: controller.signal })).rejects.toSatisfy(isAbort);
  });

  /** A stand-in signal that counts how often it is checked and reports "aborted" from the n-th check on. */
  function countingSignal(abortAt: number): { signal: AbortSignal; checks: () => number } {
    let checks = 0;
    const signal = {
      get aborted(): boolean {
        checks++;
        return checks >= abortAt;
      },
      reason: undefined,
      onabort: null,
      addEventListener(): void {},
      removeEventListener(): void {},
      dispatchEvent: (): boolean => false,
      throwIfAborted(): void {
        if (this.aborted) throw new DOMException('aborted', 'AbortError');
      },
    };
    return { signal: signal as unknown as AbortSignal, checks: () => checks };
  }

  it('stops a folder walk in progress', async () => {
    const folder = join(dir, 'many');
    for (let i = 0; i < 50; i++) file(`many/f${String(i).padStart(2, '0')}.txt`, `file ${i}\n`);
    const controller = new AbortController();
    const walking = readDocument(folder, { signal: controller.signal });
    queueMicrotask(() => controller.abort());
    await expect(walking).rejects.toSatisfy(isAbort);
  });

  it('checks the signal between PDF pages', async () => {
    const pages = Array.from({ length: 30 }, (_, i) => ({ texts: [{ text: `Page ${i}`, x: 72, y: 700 }] }));
    const pdf = file('long.pdf', buildPdf({ pages }));
    const counting = countingSignal(Infinity);
    await readDocument(pdf, { signal: counting.signal });
    const total = counting.checks();
    expect(total).toBeGreaterThanOrEqual(30);
    // Aborting a few checks before the end lands inside the page loop.
    await expect(readDocument(pdf, { signal: countingSignal(total - 5).signal })).rejects.toSatisfy(isAbort);
  });
});
