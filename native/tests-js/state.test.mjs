// States: ingest with progress, clone/save/load/reset equivalence, ownership and busy rules.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';

import { greedy, makeModel, megalodon, sampleText, tempDir, TINY } from './fixtures.mjs';

const { Model, State } = megalodon;

describe('State', () => {
  let dir;
  let model;
  let documentTokens;

  before(async () => {
    dir = tempDir();
    model = await Model.load(makeModel(dir, 'tiny.gguf', TINY), { threads: 2 });
    documentTokens = await model.tokenize(sampleText(400), { addBos: true });
    assert.ok(documentTokens.length > 10 * TINY.chunk, 'the document spans many chunks');
  });

  test('a fresh state is empty', () => {
    const state = model.createState();
    assert.ok(state instanceof State);
    assert.equal(state.model, model);
    assert.equal(state.position, 0);
    assert.equal(state.busy, false);
    assert.equal(state.closed, false);
    assert.equal(state.tsnRefresh, false);
    assert.equal(state.logits(0), null, 'no logits before eval');
    assert.equal(model.createState({ tsnRefresh: true }).tsnRefresh, true);
  });

  test('ingest advances the position and reports progress per chunk', async () => {
    const state = model.createState();
    const events = [];
    const result = await model.ingest(state, documentTokens, { onProgress: (p) => events.push(p) });
    assert.equal(result.tokens, documentTokens.length);
    assert.ok(result.seconds >= 0);
    assert.equal(state.position, documentTokens.length);
    assert.ok(events.length >= Math.floor(documentTokens.length / TINY.chunk) - 1, `${events.length} events`);
    for (let i = 0; i < events.length; i++) {
      const { done, total, tokensPerSecond } = events[i];
      assert.equal(total, documentTokens.length);
      assert.ok(done > 0 && done <= total);
      if (i > 0) assert.ok(done > events[i - 1].done, 'progress increases');
      if (done < total) assert.equal(done % TINY.chunk, 0, 'progress lands on chunk boundaries');
      assert.ok(Number.isFinite(tokensPerSecond) && tokensPerSecond >= 0);
    }
    assert.equal(events[events.length - 1].done, documentTokens.length);
  });

  test('ingest accepts plain arrays and continues across calls like one call', async () => {
    const whole = model.createState();
    await model.ingest(whole, documentTokens);
    const split = model.createState();
    const cut = 37;  // not a chunk boundary
    await model.ingest(split, Array.from(documentTokens.subarray(0, cut)));
    await model.ingest(split, documentTokens.subarray(cut));
    assert.equal(split.position, whole.position);
    const prompt = documentTokens.subarray(5, 9);
    assert.deepEqual(await greedy(model, split, prompt), await greedy(model, whole, prompt));
  });

  test('clone is an independent copy: identical greedy continuations', async () => {
    const state = model.createState();
    await model.ingest(state, documentTokens);
    const copy = state.clone();
    assert.equal(copy.position, state.position);
    const prompt = documentTokens.subarray(10, 14);
    const fromCopy = await greedy(model, copy, prompt);
    assert.equal(copy.position, state.position + prompt.length + fromCopy.length);
    assert.equal(state.position, documentTokens.length, 'the original did not move');
    assert.deepEqual(await greedy(model, state, prompt), fromCopy);
  });

  test('save and loadState restore the state exactly', async () => {
    const state = model.createState();
    await model.ingest(state, documentTokens);
    const file = path.join(dir, 'doc.state');
    await state.save(file);
    assert.equal(fs.statSync(file).size, state.sizeBytes);
    const loaded = await model.loadState(file);
    assert.equal(loaded.position, state.position);
    assert.equal(loaded.sizeBytes, state.sizeBytes);
    const prompt = documentTokens.subarray(20, 25);
    assert.deepEqual(await greedy(model, loaded, prompt), await greedy(model, state, prompt));
  });

  test('state size at a chunk boundary does not depend on the position', async () => {
    const short = model.createState();
    await model.ingest(short, documentTokens.subarray(0, 2 * TINY.chunk));
    const long = model.createState();
    await model.ingest(long, documentTokens.subarray(0, 10 * TINY.chunk));
    assert.equal(short.sizeBytes, long.sizeBytes);
    assert.equal(long.sizeBytes, model.info.stateBytes);
  });

  test('reset returns to position 0 and behaves like a fresh state', async () => {
    const state = model.createState();
    await model.ingest(state, documentTokens);
    state.reset();
    assert.equal(state.position, 0);
    const prompt = documentTokens.subarray(0, 6);
    assert.deepEqual(await greedy(model, state, prompt), await greedy(model, model.createState(), prompt));
  });

  test('a state file of another model rejects with MGL_ERR_MISMATCH; corrupt ones with MGL_ERR_FORMAT', async () => {
    const state = model.createState();
    await model.ingest(state, documentTokens.subarray(0, 50));
    const file = path.join(dir, 'mine.state');
    await state.save(file);

    const other = await Model.load(makeModel(dir, 'other.gguf', { ...TINY, seed: 99 }));
    await assert.rejects(other.loadState(file), { code: 'MGL_ERR_MISMATCH' });
    other.close();

    const bytes = fs.readFileSync(file);
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length / 2)] ^= 0x40;
    const flippedPath = path.join(dir, 'flipped.state');
    fs.writeFileSync(flippedPath, flipped);
    await assert.rejects(model.loadState(flippedPath), { code: 'MGL_ERR_FORMAT' });

    const truncatedPath = path.join(dir, 'truncated.state');
    fs.writeFileSync(truncatedPath, bytes.subarray(0, bytes.length - 9));
    await assert.rejects(model.loadState(truncatedPath), { code: 'MGL_ERR_FORMAT' });

    await assert.rejects(model.loadState(path.join(dir, 'absent.state')), { code: 'MGL_ERR_IO' });
    await assert.rejects(state.save(path.join(dir, 'no-such-folder', 'x.state')), { code: 'MGL_ERR_IO' });
  });

  test('token ids out of range reject with MGL_ERR_INVALID_ARG and leave the state untouched', async () => {
    const state = model.createState();
    await model.ingest(state, [1, 2, 3]);
    await assert.rejects(model.ingest(state, [1, model.info.nVocab]), { name: 'RangeError', code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(model.ingest(state, new Int32Array([-5])), { code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(model.ingest(state, [0.5]), { code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(model.ingest(state, 'text'), { name: 'TypeError', code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(model.ingest(state, [1], { onProgress: 5 }), { code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(model.ingest(state, [1], { signal: {} }), { code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(model.ingest({}, [1]), { name: 'TypeError', code: 'MGL_ERR_INVALID_ARG' });
    assert.equal(state.position, 3);
  });

  test('a State cannot be used with another Model', async () => {
    const other = await Model.load(makeModel(dir, 'third.gguf', { ...TINY, seed: 5 }));
    const state = model.createState();
    await assert.rejects(other.ingest(state, [1, 2]), { code: 'MGL_ERR_INVALID_ARG', message: /another model/ });
    await assert.rejects(other.eval(state, [1, 2]), { code: 'MGL_ERR_INVALID_ARG' });
    other.close();
  });

  test('a State used by two calls at once rejects the second with MGL_ERR_BUSY', async () => {
    const state = model.createState();
    const tokens = new Int32Array(TINY.chunk * 200).fill(7);
    const first = model.ingest(state, tokens);
    // Everything below starts before the event loop turns, so the first call is still running.
    assert.equal(state.busy, true);
    const second = [
      model.ingest(state, [1]),
      model.eval(state, [1]),
      model.score(state, [1, 2]),
      state.save(path.join(dir, 'busy.state')),
    ];
    const generation = model.generate(state, { prompt: [1], maxTokens: 1 });
    assert.throws(() => state.clone(), { code: 'MGL_ERR_BUSY' });
    assert.throws(() => state.reset(), { code: 'MGL_ERR_BUSY' });
    assert.throws(() => state.close(), { code: 'MGL_ERR_BUSY' });
    assert.throws(() => state.logits(0), { code: 'MGL_ERR_BUSY' });
    assert.throws(() => model.setThreads(1), { code: 'MGL_ERR_BUSY' });
    // Other states of the same model may run at the same time.
    const other = model.createState();
    const concurrent = model.ingest(other, [1, 2, 3]);
    for (const call of second) await assert.rejects(call, { code: 'MGL_ERR_BUSY', message: /busy/ });
    await assert.rejects(generation.result, { code: 'MGL_ERR_BUSY' });
    await concurrent;
    assert.equal(other.position, 3);
    await first;
    assert.equal(state.busy, false);
    assert.equal(state.position, tokens.length);
  });

  test('close frees a state; later calls throw MGL_ERR_CLOSED', async () => {
    const state = model.createState();
    state.close();
    assert.equal(state.closed, true);
    assert.throws(() => state.position, { code: 'MGL_ERR_CLOSED' });
    assert.throws(() => state.clone(), { code: 'MGL_ERR_CLOSED' });
    await assert.rejects(model.ingest(state, [1]), { code: 'MGL_ERR_CLOSED' });
    await assert.rejects(state.save(path.join(dir, 'closed.state')), { code: 'MGL_ERR_CLOSED' });
  });

  test('score reports the mean negative log-likelihood', async () => {
    const state = model.createState();
    const tokens = documentTokens.subarray(0, 5 * TINY.chunk);
    const result = await model.score(state, tokens);
    assert.equal(result.tokens, tokens.length);
    assert.equal(result.scored, tokens.length - 1);
    assert.ok(result.meanNll > 0 && result.meanNll < 3 * Math.log(TINY.vocab), `meanNll ${result.meanNll}`);
    assert.ok(Math.abs(result.perplexity - Math.exp(result.meanNll)) < 1e-9 * result.perplexity);
    assert.ok(Math.abs(result.sumNll / result.scored - result.meanNll) < 1e-9);
    assert.equal(state.position, tokens.length);
  });
});
