// Long calls run off the JS thread: the event loop keeps turning, AbortSignal cancels between
// chunks, and a throwing progress handler stops the call.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { greedy, makeModel, megalodon, tempDir, TINY } from './fixtures.mjs';

const { Model, AbortError } = megalodon;

describe('asynchronous calls', () => {
  let model;
  let longTokens;  // about three seconds of ingest

  before(async () => {
    const dir = tempDir();
    model = await Model.load(makeModel(dir, 'tiny.gguf', TINY), { threads: 2 });
    const sample = randomTokens(TINY.chunk * 256, 11);
    const start = performance.now();
    await model.ingest(model.createState(), sample);
    const rate = sample.length / Math.max((performance.now() - start) / 1000, 1e-3);
    const count = Math.min(Math.ceil((3.0 * rate) / TINY.chunk) * TINY.chunk, 8_000_000);
    longTokens = randomTokens(count, 12);
  });

  function randomTokens(n, seed) {
    const tokens = new Int32Array(n);
    let x = seed;
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      tokens[i] = x % TINY.vocab;
    }
    return tokens;
  }

  test('a multi-second ingest does not block the event loop', async () => {
    let ticks = 0;
    let maxGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 10);
    const start = performance.now();
    const result = await model.ingest(model.createState(), longTokens);
    const seconds = (performance.now() - start) / 1000;
    clearInterval(timer);
    assert.equal(result.tokens, longTokens.length);
    assert.ok(seconds > 1, `the ingest took ${seconds.toFixed(2)} s`);
    assert.ok(ticks >= (seconds * 100) / 3, `${ticks} ticks of 10 ms in ${seconds.toFixed(2)} s`);
    assert.ok(maxGap < 250, `longest pause of the event loop: ${maxGap.toFixed(0)} ms`);
  });

  test('aborting mid-ingest stops at a chunk boundary; resuming gives the same state', async () => {
    const state = model.createState();
    const controller = new AbortController();
    const events = [];
    const start = performance.now();
    await assert.rejects(
      model.ingest(state, longTokens, {
        signal: controller.signal,
        onProgress: (p) => {
          events.push(p.done);
          if (events.length === 3) controller.abort(new Error('user pressed stop'));
        },
      }),
      (error) => {
        assert.ok(error instanceof AbortError);
        assert.equal(error.code, 'ABORT_ERR');
        assert.equal(error.cause.message, 'user pressed stop');
        return true;
      },
    );
    const seconds = (performance.now() - start) / 1000;
    const position = state.position;
    assert.ok(position > 0 && position < longTokens.length, `position ${position} of ${longTokens.length}`);
    assert.equal(position % TINY.chunk, 0, 'cancellation happens between chunks');
    assert.ok(position >= events[2], 'every reported chunk is in the state');
    assert.ok(seconds < 1.5, `stopped after ${seconds.toFixed(2)} s`);
    assert.equal(state.busy, false);

    // Resume for a while (not to a chunk boundary) and compare with one uninterrupted ingest.
    const end = Math.min(longTokens.length, position + 64 * TINY.chunk + 5);
    await model.ingest(state, longTokens.subarray(position, end));
    const straight = model.createState();
    await model.ingest(straight, longTokens.subarray(0, end));
    assert.equal(state.position, straight.position);
    assert.deepEqual(await greedy(model, state, [1, 2, 3]), await greedy(model, straight, [1, 2, 3]));
  });

  test('an already-aborted signal rejects at once and runs nothing', async () => {
    const state = model.createState();
    let progressCalls = 0;
    const reason = new Error('already stopped');
    await assert.rejects(
      model.ingest(state, longTokens, { signal: AbortSignal.abort(reason), onProgress: () => progressCalls++ }),
      (error) => error instanceof AbortError && error.cause === reason,
    );
    await assert.rejects(model.score(state, [1, 2, 3], { signal: AbortSignal.abort() }), { name: 'AbortError' });
    assert.equal(state.position, 0);
    assert.equal(progressCalls, 0);
    assert.equal(state.busy, false);
  });

  test('an abort after completion changes nothing', async () => {
    const state = model.createState();
    const controller = new AbortController();
    const result = await model.ingest(state, [1, 2, 3], { signal: controller.signal });
    controller.abort();
    assert.equal(result.tokens, 3);
    assert.equal(state.position, 3);
  });

  test('a throwing progress handler stops the ingest and rejects with its error', async () => {
    const state = model.createState();
    const failure = new Error('handler failed');
    await assert.rejects(
      model.ingest(state, longTokens, { onProgress: () => { throw failure; } }),
      (error) => error === failure,
    );
    assert.equal(state.position % TINY.chunk, 0);
    assert.ok(state.position < longTokens.length);
    assert.equal(state.busy, false);
  });

  test('several states of one model ingest concurrently', async () => {
    const states = [model.createState(), model.createState(), model.createState()];
    const slice = longTokens.subarray(0, TINY.chunk * 100);
    const results = await Promise.all(states.map((s) => model.ingest(s, slice)));
    for (const [i, s] of states.entries()) {
      assert.equal(results[i].tokens, slice.length);
      assert.equal(s.position, slice.length);
    }
    const [a, b] = await Promise.all([greedy(model, states[0], [5]), greedy(model, states[1], [5])]);
    assert.deepEqual(a, b);
  });
});
