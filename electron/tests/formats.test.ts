// Every document format through the whole backend (read, index, model, ask): the citation of a
// question whose answer is known names the right place ("Chapter 2, p. 3", "src/tide.py:4");
// broken inputs end with a readable error and leave the rest of the library as it was.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Backend } from '../backend/backend';
import { buildDocx, buildEpub } from './fixtures/office-builders';
import { buildPdf } from './fixtures/pdf-builder';
import { prose, tempDir, testModelPath } from './helpers';

const NEEDLE = 'Marguerite Okonkwo repaired the brass orrery on the ninth of Thermidor';
const QUESTION = 'Who repaired the brass orrery?';

describe('formats through the backend', () => {
  let dir: string;
  let backend: Backend;

  beforeAll(async () => {
    dir = tempDir('formats');
    backend = await Backend.open({ dataDir: path.join(dir, 'data'), modelPath: testModelPath(), threads: 2 });
  });
  afterAll(async () => {
    await backend.close();
  });

  async function ingest(name: string, data: string | Buffer) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, data);
    const [doc] = await backend.request('documents.add', { paths: [file] });
    await backend.idle();
    return backend.request('documents.get', { docId: doc.id });
  }

  async function citationFor(docId: string) {
    const answer = await backend.request('ask', { requestId: `q-${docId}`, question: QUESTION, docIds: [docId], maxTokens: 8 });
    return answer.citations[0];
  }

  it('PDF: page numbers and outline chapters', async () => {
    const line = (text: string, y: number) => ({ text, x: 72, y });
    const pages = [
      { texts: [line('Chapter 1', 740), line(prose(1, 1).slice(0, 90), 700)] },
      { texts: [line('Chapter 2', 740), line(prose(1, 2).slice(0, 90), 700)] },
      { texts: [line(prose(1, 3).slice(0, 90), 740), line(`${NEEDLE}.`, 700)] },
    ];
    const doc = await ingest('paper.pdf', buildPdf({ pages, title: 'Orrery Notes',
      outline: [{ title: 'Chapter 1', page: 0 }, { title: 'Chapter 2', page: 1 }] }));
    expect(doc.status).toBe('ready');
    expect(doc.pages.length).toBe(3);
    const c = await citationFor(doc.id);
    expect(c.text).toContain('Okonkwo');
    expect(c.location).toBe(c.charStart < doc.pages[2].charStart ? 'Chapter 2, pp. 2\u20133' : 'Chapter 2, p. 3');
  });

  it('EPUB: chapters from the table of contents', async () => {
    const chapters = [1, 2, 3].map((n) => ({ id: `c${n}`, file: `c${n}.xhtml`, tocTitle: `The ${['First', 'Second', 'Third'][n - 1]} Voyage`,
      body: `<h1>Voyage ${n}</h1><p>${prose(3, n)}</p>${n === 2 ? `<p>${NEEDLE}.</p>` : ''}` }));
    const doc = await ingest('voyages.epub', buildEpub({ title: 'Voyages', chapters }));
    expect(doc.status).toBe('ready');
    expect((await citationFor(doc.id)).location).toBe('The Second Voyage');
  });

  it('DOCX: headings as sections', async () => {
    const doc = await ingest('report.docx', buildDocx([
      { text: 'Workshop Report', style: 'Title' },
      { text: 'Findings', style: 'Heading1' }, { text: prose(2, 4) },
      { text: 'Repairs', style: 'Heading1' }, { text: prose(1, 5) }, { text: `${NEEDLE}.` },
    ]));
    expect(doc.status).toBe('ready');
    expect((await citationFor(doc.id)).location).toBe('Repairs');
  });

  it('HTML and plain text with invalid UTF-8 bytes', async () => {
    const html = await ingest('page.html', `<html><head><title>Clockwork</title></head><body><h1>Gears</h1><p>${prose(2, 6)}</p>` +
      `<h1>Orreries</h1><p>${NEEDLE}.</p></body></html>`);
    expect(html.status).toBe('ready');
    expect((await citationFor(html.id)).location).toBe('Orreries');
    const bytes = Buffer.concat([Buffer.from(`${prose(2, 7)}\n`), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from(`\n${NEEDLE}.\n`)]);
    const text = await ingest('log.txt', bytes);
    expect(text.status).toBe('ready');
    const cited = await citationFor(text.id);
    expect(cited.text).toContain('Okonkwo');
    // No chapters or pages: the location is the line the passage starts on.
    const lines = bytes.toString('utf8').split('\n');
    const firstLine = cited.text.split('\n')[0];
    expect(cited.location).toBe(`line ${lines.findIndex((l) => l.replace('\ufffd', '') !== '' && firstLine.startsWith(l.slice(0, 20))) + 1}`);
  });

  it('a source folder: .gitignore respected, citations as path:line', async () => {
    const repo = path.join(dir, 'repo');
    fs.mkdirSync(path.join(repo, 'src'), { recursive: true });
    fs.mkdirSync(path.join(repo, 'node_modules', 'dep'), { recursive: true });
    fs.writeFileSync(path.join(repo, '.gitignore'), 'secret.txt\n');
    fs.writeFileSync(path.join(repo, 'secret.txt'), 'Marguerite Okonkwo orrery password\n');
    fs.writeFileSync(path.join(repo, 'node_modules', 'dep', 'index.js'), '// Marguerite Okonkwo orrery vendored\n');
    fs.writeFileSync(path.join(repo, 'src', 'gears.py'), `def gears():\n    return ${JSON.stringify(prose(1, 8))}\n`);
    fs.writeFileSync(path.join(repo, 'src', 'tide.py'), `import math\n\n\n# ${NEEDLE}\ndef tide(t):\n    return math.sin(t)\n`);
    const [doc] = await backend.request('documents.add', { paths: [repo] });
    await backend.idle();
    const detail = await backend.request('documents.get', { docId: doc.id });
    expect(detail.status).toBe('ready');
    expect(detail.sections.map((s) => s.path)).toEqual(['.gitignore', 'src/gears.py', 'src/tide.py']);
    const answer = await backend.request('ask', { requestId: 'q-repo', question: QUESTION, docIds: [doc.id], maxTokens: 8 });
    expect(answer.citations.every((c) => !/password|vendored/.test(c.text))).toBe(true);
    const hit = answer.citations.find((c) => c.text.includes('Okonkwo'))!;
    // The line where the cited passage starts, found in the original file.
    const source = fs.readFileSync(path.join(repo, 'src', 'tide.py'), 'utf8').split('\n');
    const firstLine = hit.text.split('\n')[0];
    const line = firstLine.startsWith('===') ? 1 : source.indexOf(firstLine) + 1;
    expect(line).toBeGreaterThan(0);
    expect(hit.location).toBe(`src/tide.py:${line}`);
  });

  it('broken inputs: image-only PDF, encrypted PDF, broken EPUB', async () => {
    const before = (await backend.request('documents.list', {})).filter((d) => d.status === 'ready').length;
    const cases: [string, Buffer, RegExp][] = [
      ['scan.pdf', buildPdf({ pages: [{ rectangle: true }] }), /no text/i],
      ['locked.pdf', buildPdf({ pages: [{ texts: [{ text: 'secret', x: 72, y: 700 }] }], encrypted: true }), /password|encrypt/i],
      ['broken.epub', buildEpub({ title: 'x', chapters: [{ id: 'a', file: 'a.xhtml', body: '<p>a</p>', tocTitle: 'A' }] }).subarray(0, 200), /corrupt|broken|damaged|not a valid|cannot be read/i],
    ];
    for (const [name, data, message] of cases) {
      const doc = await ingest(name, data);
      expect(doc.status, name).toBe('error');
      expect(doc.error, name).toMatch(message);
    }
    const after = (await backend.request('documents.list', {})).filter((d) => d.status === 'ready').length;
    expect(after).toBe(before);
  });
});
