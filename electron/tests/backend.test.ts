// The backend end to end with the real runtime: ingest, snapshots, ask with citations,
// summaries, interruption and resume, damaged state files and bad inputs.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineStatus } from '../api/types';
import { Backend } from '../backend/backend';
import { appRoot } from '../backend/engine/engine';
import { dataPaths, Library } from '../backend/library';
import { book, prose, tempDir, testModelPath } from './helpers';

const NEEDLE = 'The lighthouse keeper Ezekiel Thornbury fed seventeen marmalade cats every evening at the quay.';

async function openBackend(dataDir: string): Promise<Backend> {
  return Backend.open({ dataDir, modelPath: testModelPath(), threads: 2 });
}

async function addAndWait(backend: Backend, file: string) {
  const [doc] = await backend.request('documents.add', { paths: [file] });
  await backend.idle();
  return backend.request('documents.get', { docId: doc.id });
}

describe('backend', () => {
  let dir: string;
  let backend: Backend;
  let bookPath: string;

  beforeAll(async () => {
    dir = tempDir('backend');
    bookPath = path.join(dir, 'harbor.md');
    fs.writeFileSync(bookPath, book(6, 30, { chapter: 4, text: NEEDLE }));
    backend = await openBackend(path.join(dir, 'data'));
    await backend.request('settings.set', { key: 'snapshotInterval', value: 2048 });
  });
  afterAll(async () => {
    await backend.close();
  });

  it('ingests a book: passages, sections with token ranges, snapshots and a final state', async () => {
    const events: string[] = [];
    const off = backend.onEvent((e) => {
      if (e.type === 'progress') events.push(e.progress.phase);
    });
    const doc = await addAndWait(backend, bookPath);
    off();
    expect(doc.status).toBe('ready');
    expect(doc.tokensIngested).toBe(doc.tokenCount);
    expect(doc.passageCount).toBeGreaterThan(5);
    expect(doc.sections.map((s) => s.label)).toContain('Chapter 4');
    expect(doc.sections.every((s) => s.tokenStart !== null && s.tokenEnd! > s.tokenStart!)).toBe(true);
    expect(doc.snapshots).toBeGreaterThanOrEqual(Math.floor(doc.tokenCount / 2048));
    expect(events).toContain('ingesting');
    expect(events.at(-1)).toBe('done');

    // The passages tile the text, and their token ranges tile the token stream after the start token.
    const passages = backend.library.getPassages(doc.id, { fromIdx: 0, limit: 100000 });
    const text = fs.readFileSync(dataPaths(backend.library.dataDir).textPath(doc.id), 'utf8');
    expect(passages.map((p) => p.text).join('')).toBe(text);
    passages.forEach((p, i) => {
      expect(p.tokenStart).toBe(i === 0 ? 1 : passages[i - 1].tokenEnd);
      expect(text.slice(p.charStart, p.charEnd)).toBe(p.text);
    });
    expect(passages.at(-1)!.tokenEnd).toBe(doc.tokenCount);
  });

  it('answers with a citation of the passage that holds the answer', async () => {
    const [doc] = await backend.request('documents.list', {});
    const tokens: string[] = [];
    const off = backend.onEvent((e) => {
      if (e.type === 'answer-token') tokens.push(e.text);
    });
    const result = await backend.request('ask', { requestId: 'q1', question: 'How many cats did Ezekiel Thornbury feed?', docIds: [doc.id], maxTokens: 24 });
    off();
    expect(result.citations[0].text).toContain('Ezekiel Thornbury');
    expect(result.citations[0].location).toContain('Chapter 4');
    const text = (await backend.request('documents.text', { docId: doc.id, charStart: result.citations[0].charStart, charEnd: result.citations[0].charEnd })).text;
    expect(text).toBe(result.citations[0].text);
    expect(tokens.join('').trim()).toBe(result.answer);
    expect(result.firstTokenMs).not.toBeNull();

    // A follow-up continues the conversation (its state was saved) and is stored with it.
    const follow = await backend.request('ask', { requestId: 'q2', question: 'Where did he feed them?', conversationId: result.conversationId, maxTokens: 16 });
    expect(follow.conversationId).toBe(result.conversationId);
    const conversation = await backend.request('conversations.get', { conversationId: result.conversationId });
    expect(conversation.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
  });

  it('summarises each chapter from its snapshot and the whole book, then serves the cache', async () => {
    const [doc] = await backend.request('documents.list', {});
    const first = await backend.request('summarize', { requestId: 's1', docId: doc.id, maxSections: 3 });
    expect(first.sections.length).toBeGreaterThan(0);
    expect(first.sections.every((s) => !s.cached && s.keyPassages.length > 0)).toBe(true);
    expect(first.document.cached).toBe(false);
    const again = await backend.request('summarize', { requestId: 's2', docId: doc.id, maxSections: 3 });
    expect(again.sections.every((s) => s.cached)).toBe(true);
    expect(again.document.text).toBe(first.document.text);
  });

  it('answers over a collection from the passages of several documents', async () => {
    const second = path.join(dir, 'orchard.md');
    fs.writeFileSync(second, `# Orchard\n\n${prose(10, 9)}\n\nThe orchard keeper Philippa Quennell grafted forty quince trees.\n`);
    const orchard = await addAndWait(backend, second);
    const harbor = (await backend.request('documents.list', {})).find((d) => d.sourcePath === bookPath)!;
    const shelf = await backend.request('collections.create', { name: 'Shelf' });
    for (const d of [harbor, orchard]) await backend.request('documents.setCollection', { docId: d.id, collectionId: shelf.id });
    const result = await backend.request('ask', { requestId: 'qc', question: 'Who grafted quince trees and who fed cats?',
      collectionId: shelf.id, maxTokens: 8 });
    const cited = new Set(result.citations.slice(0, 2).map((c) => c.docId));
    expect(cited).toEqual(new Set([harbor.id, orchard.id]));
    await backend.request('documents.remove', { docId: orchard.id });
  });

  it('gives the same answer with speculative decoding on, off and automatic, and times each way', async () => {
    const doc = (await backend.request('documents.list', {})).find((d) => d.sourcePath === bookPath)!;
    const answers: string[] = [];
    const statuses: EngineStatus[] = [];
    const off = backend.onEvent((e) => {
      if (e.type === 'engine') statuses.push(e.status);
    });
    const before = backend.engine.speculativeMeasurement;
    for (const mode of [0, 1, 2, 2]) {
      await backend.request('settings.set', { key: 'speculative', value: mode });
      const r = await backend.request('ask', { requestId: `spec${answers.length}`, question: 'What did the keeper feed?', docIds: [doc.id], maxTokens: 24 });
      answers.push(r.answer);
      expect(r.nTokens).toBeGreaterThan(0);
      expect(r.tokensPerSecond).toBeGreaterThan(0);
      if (mode === 0) expect(r.tokensPerForward).toBeNull();
      if (mode === 1) expect(r.tokensPerForward).toBeGreaterThanOrEqual(1);
    }
    off();
    expect(new Set(answers).size).toBe(1);
    // Answers are timed whichever way they went (at most once each; ones under 8 tokens not at all).
    const measured = backend.engine.speculativeMeasurement;
    expect(measured.plainRuns + measured.speculativeRuns).toBeLessThanOrEqual(before.plainRuns + before.speculativeRuns + answers.length);
    expect(measured.plainRuns).toBeGreaterThan(before.plainRuns);
    expect(measured.speculativeRuns).toBeGreaterThan(before.speculativeRuns);
    // The measurement reaches the clients (the settings dialog shows it).
    expect(statuses.at(-1)!.model!.speculative).toEqual(measured);
    expect((await backend.request('engine.status', {})).model!.speculative).toEqual(measured);
  });

  it('rejects bad payloads with INVALID_REQUEST', async () => {
    await expect(backend.request('documents.get', { docId: '../../etc' })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(backend.request('ask', { requestId: 'x', question: '' })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(backend.request('documents.add', { paths: [path.join(dir, 'missing.txt')] })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    // One missing path among several: nothing is added.
    const before = (await backend.request('documents.list', {})).length;
    const extra = path.join(dir, 'extra.txt');
    fs.writeFileSync(extra, prose(3, 21));
    await expect(backend.request('documents.add', { paths: [extra, path.join(dir, 'missing.txt')] })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await backend.request('documents.list', {})).length).toBe(before);
  });

  it('gives bad inputs a clear error and keeps the library intact', async () => {
    const binary = path.join(dir, 'blob.bin');
    fs.writeFileSync(binary, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)));
    const empty = path.join(dir, 'empty.txt');
    fs.writeFileSync(empty, '');
    for (const file of [binary, empty]) {
      const doc = await addAndWait(backend, file);
      expect(doc.status).toBe('error');
      expect(doc.error).toMatch(/binary|empty/i);
    }
    const docs = await backend.request('documents.list', {});
    expect(docs.find((d) => d.sourcePath === bookPath)?.status).toBe('ready');
  });

  it('detects a damaged final state and recovers it from the last good snapshot', async () => {
    const doc = (await backend.request('documents.list', {})).find((d) => d.sourcePath === bookPath)!;
    const final = backend.library.finalSnapshot(doc.id, backend.engine.fingerprint)!;
    const good = fs.readFileSync(final.path);
    const bad = Buffer.from(good);
    bad[bad.length >> 1] ^= 0xff;
    fs.writeFileSync(final.path, bad);
    await expect(backend.request('ask', { requestId: 'q3', question: 'cats?', docIds: [doc.id], maxTokens: 4 }))
      .rejects.toMatchObject({ code: 'STATE_DAMAGED' });
    await backend.request('documents.resume', { docId: doc.id });
    await backend.idle();
    expect(fs.readFileSync(final.path).equals(good)).toBe(true);
    const result = await backend.request('ask', { requestId: 'q4', question: 'cats?', docIds: [doc.id], maxTokens: 4 });
    expect(result.citations.length).toBeGreaterThan(0);
  });
});

describe('a million-token document', () => {
  it('is read end to end, snapshotted along the way, and answered from', async () => {
    const dir = tempDir('million');
    const file = path.join(dir, 'long.txt');
    const needle = 'The archivist Tobiah Wrenfield catalogued eleven thousand maps in the cellar.';
    const parts = [prose(4300, 11), needle, prose(4300, 12)];   // about 1.05M tokens
    fs.writeFileSync(file, parts.join('\n\n'));
    const backend = await openBackend(path.join(dir, 'data'));
    try {
      const doc = await addAndWait(backend, file);
      expect(doc.status).toBe('ready');
      expect(doc.tokenCount).toBeGreaterThan(1_000_000);
      expect(doc.snapshots).toBeGreaterThanOrEqual(Math.floor(doc.tokenCount / 32768));
      const result = await backend.request('ask', { requestId: 'm1', question: 'Who catalogued the maps in the cellar?', docIds: [doc.id], maxTokens: 8 });
      expect(result.citations[0].text).toContain('Tobiah Wrenfield');
    } finally {
      await backend.close();
    }
  }, 600_000);
});

describe('interrupted ingestion', () => {
  it('continues after kill -9 from the last snapshot and ends in the same state as an uninterrupted run', async () => {
    const dir = tempDir('kill');
    const file = path.join(dir, 'long.txt');
    fs.writeFileSync(file, prose(1500, 7));
    const model = testModelPath();

    // Uninterrupted reference run.
    const refData = path.join(dir, 'ref');
    const ref = await openBackend(refData);
    await ref.request('settings.set', { key: 'snapshotInterval', value: 4096 });
    const refDoc = await addAndWait(ref, file);
    const refFinal = fs.readFileSync(ref.library.finalSnapshot(refDoc.id, ref.engine.fingerprint)!.path);
    const refPassages = ref.library.passageCount(refDoc.id);
    await ref.close();

    // The CLI in a child process, killed once the model has read past a snapshot.
    const data = path.join(dir, 'data');
    const setup = Library.open(data);
    setup.setSetting('snapshotInterval', 4096);
    setup.close();
    const cli = path.join(appRoot(), 'out', 'electron', 'cli', 'folio.js');
    const child = spawn(process.execPath, [cli, 'add', file, '--data', data, '--model', model, '--threads', '2'], { stdio: 'ignore' });
    const deadline = Date.now() + 60_000;
    for (;;) {
      await new Promise((r) => setTimeout(r, 50));
      const lib = Library.open(data);
      const doc = lib.listDocuments()[0];
      lib.close();
      if (doc && doc.tokensIngested > 0 && doc.tokensIngested < doc.tokenCount) break;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error('the ingest ended before it could be killed');
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const resumed = await openBackend(data);
    const [doc] = resumed.library.listDocuments();
    expect(doc.status).toBe('interrupted');
    expect(doc.tokensIngested).toBeGreaterThan(0);
    await resumed.request('documents.resume', { docId: doc.id });
    await resumed.idle();
    const after = await resumed.request('documents.get', { docId: doc.id });
    expect(after.status).toBe('ready');
    expect(after.passageCount).toBe(refPassages);
    expect(resumed.library.search('lantern harbor', { docIds: [doc.id], limit: 100000 }).length)
      .toBeLessThanOrEqual(refPassages);
    const final = fs.readFileSync(resumed.library.finalSnapshot(doc.id, resumed.engine.fingerprint)!.path);
    expect(final.equals(refFinal)).toBe(true);
    await resumed.close();
  });
});
