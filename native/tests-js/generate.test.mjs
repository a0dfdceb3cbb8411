// eval (logits of every head) and generate (streaming, stop strings, cancellation, sampling).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { greedy, makeModel, megalodon, sampleText, tempDir, TINY } from './fixtures.mjs';

const { Model, AbortError } = megalodon;

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

async function collect(generation) {
  const items = [];
  for await (const item of generation) items.push(item);
  return items;
}

describe('eval and generate', () => {
  let model;
  let context;

  before(async () => {
    const dir = tempDir();
    model = await Model.load(makeModel(dir, 'tiny.gguf', TINY), { threads: 2 });
    context = await model.tokenize(sampleText(120), { addBos: true });
  });

  test('eval returns rows x heads logits and matches state.logits', async () => {
    const state = model.createState();
    const result = await model.eval(state, context.subarray(0, 20), { rows: 3 });
    assert.equal(result.length, 3);
    for (const row of result) {
      assert.equal(row.length, model.info.nPredictHeads);
      for (const logits of row) {
        assert.ok(logits instanceof Float32Array);
        assert.equal(logits.length, model.info.nVocab);
        assert.ok(logits.every(Number.isFinite));
      }
    }
    assert.notDeepEqual(result[2][0], result[2][1], 'heads predict different offsets');
    assert.notDeepEqual(result[1][0], result[2][0], 'rows differ');
    assert.equal(state.position, 20);
    assert.deepEqual(state.logits(0), result[2][0]);
    assert.deepEqual(state.logits(1), result[2][1]);
    assert.throws(() => state.logits(model.info.nPredictHeads), { code: 'MGL_ERR_INVALID_ARG' });
  });

  test('eval in pieces equals eval in one call (streaming is exact)', async () => {
    const whole = model.createState();
    const [[expected]] = await model.eval(whole, context.subarray(0, 40), { heads: 1 });
    const pieces = model.createState();
    await model.ingest(pieces, context.subarray(0, 23));
    const [[actual]] = await model.eval(pieces, context.subarray(23, 40), { heads: 1 });
    let maxDiff = 0;
    for (let i = 0; i < expected.length; i++) maxDiff = Math.max(maxDiff, Math.abs(expected[i] - actual[i]));
    assert.ok(maxDiff < 1e-3, `max |difference| ${maxDiff}`);
  });

  test('eval validates its arguments', async () => {
    const state = model.createState();
    await assert.rejects(model.eval(state, []), { code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(model.eval(state, [1, 2], { rows: 3 }), { name: 'RangeError', code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(model.eval(state, [1, 2], { heads: 0 }), { code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(model.eval(state, [1, 2], { heads: model.info.nPredictHeads + 1 }), { code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(model.eval(state, [model.info.nVocab]), { code: 'MGL_ERR_INVALID_ARG' });
    assert.equal(state.position, 0);
  });

  test('greedy generation streams tokens and follows the argmax of eval', async () => {
    const state = model.createState();
    await model.ingest(state, context.subarray(0, 40));
    const probe = state.clone();
    const generation = model.generate(state, { prompt: context.subarray(40, 44), maxTokens: 8, temperature: 0, stopAtEos: false });
    const items = await collect(generation);
    const result = await generation.result;
    assert.equal(items.length, 8);
    assert.equal(result.nTokens, 8);
    assert.equal(result.stopReason, 'max_tokens');
    assert.equal(result.promptTokens, 4);
    assert.deepEqual(Array.from(result.tokens), items.map((i) => i.token));
    assert.equal(result.text, items.map((i) => i.text).join(''));
    assert.ok(result.tokensPerSecond > 0);
    assert.equal(state.position, 44 + 8, 'prompt and output are consumed into the state');

    // The first generated token is the argmax of the next-token logits after the prompt.
    const [[logits]] = await model.eval(probe, context.subarray(40, 44), { heads: 1 });
    assert.equal(items[0].token, argmax(logits));
  });

  test('a string prompt equals its tokens', async () => {
    const text = ' the model reads';
    const fromText = await greedy(model, model.createState(), text);
    const tokens = await model.tokenize(text, { addBos: true, parseSpecial: true });
    assert.deepEqual(await greedy(model, model.createState(), tokens), fromText);
  });

  test('the iterator return value is the final result', async () => {
    const generation = model.generate(model.createState(), { prompt: 'a', maxTokens: 3, temperature: 0, stopAtEos: false });
    const iterator = generation[Symbol.asyncIterator]();
    let step;
    let count = 0;
    while (!(step = await iterator.next()).done) count++;
    assert.equal(count, 3);
    assert.equal(step.value.nTokens, 3);
    assert.equal(step.value, await generation.result);
  });

  test('a stop string ends generation before it', async () => {
    const base = model.createState();
    await model.ingest(base, context.subarray(0, 30));
    const prompt = context.subarray(30, 33);
    const free = model.generate(base.clone(), { prompt, maxTokens: 40, temperature: 0, stopAtEos: false });
    await collect(free);
    const fullText = (await free.result).text;
    // A two-character piece whose first occurrence is a few characters in.
    let stop = null;
    for (let i = 3; i + 2 <= fullText.length && stop === null; i++) {
      const candidate = fullText.slice(i, i + 2);
      if (fullText.indexOf(candidate) === i && candidate.trim().length === 2) stop = candidate;
    }
    assert.ok(stop !== null, `no usable stop string in ${JSON.stringify(fullText)}`);
    const stopped = model.generate(base.clone(), { prompt, maxTokens: 40, temperature: 0, stopAtEos: false, stop: [stop] });
    const items = await collect(stopped);
    const result = await stopped.result;
    assert.equal(result.stopReason, 'stop_string');
    assert.equal(result.text, fullText.slice(0, fullText.indexOf(stop)));
    assert.equal(items.map((i) => i.text).join(''), result.text);
    assert.ok(result.nTokens < 40);
  });

  test('seeded sampling is reproducible and differs across seeds', async () => {
    const run = async (seed) => {
      const generation = model.generate(model.createState(), {
        prompt: 'the', maxTokens: 24, temperature: 1.0, topK: 50, topP: 0.95, minP: 0.01,
        repeatPenalty: 1.1, repeatLastN: 16, seed, stopAtEos: false,
      });
      return Array.from((await generation.result).tokens);
    };
    const a = await run(1);
    assert.equal(a.length, 24);
    assert.deepEqual(await run(1), a);
    assert.notDeepEqual(await run(2), a);
    assert.deepEqual(await run(2n), await run(2));
  });

  test('breaking out of the loop cancels and frees the state', async () => {
    const state = model.createState();
    const generation = model.generate(state, { prompt: 'the', maxTokens: 100000, temperature: 0, stopAtEos: false });
    let count = 0;
    for await (const _ of generation) {
      if (++count === 3) break;
    }
    assert.equal(state.busy, false, 'the loop exits after the native call ended');
    const result = await generation.result;
    assert.equal(result.stopReason, 'cancelled');
    assert.ok(result.nTokens >= 3 && result.nTokens < 100000);
    await model.ingest(state, [1, 2]);  // usable again
  });

  test('an AbortSignal stops generation with an AbortError', async () => {
    const state = model.createState();
    const controller = new AbortController();
    const generation = model.generate(state, {
      prompt: 'the', maxTokens: 100000, temperature: 0, stopAtEos: false, signal: controller.signal,
    });
    let count = 0;
    await assert.rejects(async () => {
      for await (const _ of generation) {
        if (++count === 2) controller.abort();
      }
    }, (error) => error instanceof AbortError && error.name === 'AbortError' && error.code === 'ABORT_ERR');
    await assert.rejects(generation.result, { name: 'AbortError' });
    assert.equal(state.busy, false);
    assert.ok(state.position > 1 && state.position < 100000);
  });

  test('an already-aborted signal rejects before anything runs', async () => {
    const state = model.createState();
    const generation = model.generate(state, { prompt: 'the', maxTokens: 5, signal: AbortSignal.abort() });
    await assert.rejects(collect(generation), { name: 'AbortError' });
    assert.equal(state.position, 0);
  });

  test('invalid options reject through the iterator and the result', async () => {
    const generation = model.generate(model.createState(), { prompt: 'the', maxTokens: -1 });
    await assert.rejects(collect(generation), { name: 'RangeError', code: 'MGL_ERR_INVALID_ARG' });
    const bad = [
      { topP: 2 }, { temperature: -1 }, { topK: 1.5 }, { stop: 'x' }, { stop: [''] }, { seed: -1 },
      { prompt: 42 }, { prompt: [model.info.nVocab] }, { stopAtEos: 1 },
    ];
    for (const options of bad) {
      const g = model.generate(model.createState(), { maxTokens: 1, ...options });
      await assert.rejects(g.result, { code: 'MGL_ERR_INVALID_ARG' }, JSON.stringify(options));
    }
  });

  test('without a prompt, generation starts from the logits of the last eval', async () => {
    const evaluated = model.createState();
    await model.eval(evaluated, context.subarray(0, 10));
    const fromLogits = model.generate(evaluated, { maxTokens: 4, temperature: 0, stopAtEos: false });
    const ingested = model.createState();
    await model.ingest(ingested, context.subarray(0, 9));
    const fromPrompt = model.generate(ingested, { prompt: context.subarray(9, 10), maxTokens: 4, temperature: 0, stopAtEos: false });
    assert.deepEqual((await fromLogits.result).tokens, (await fromPrompt.result).tokens);
    assert.equal((await fromLogits.result).nTokens, 4);

    const empty = model.generate(model.createState(), { maxTokens: 4 });
    await assert.rejects(empty.result, (error) => /^MGL_ERR_/.test(error.code));
  });

  test('speculative greedy decoding gives the plain tokens and reports its statistics', async () => {
    for (const prompt of ['the model', 'station bakery', context.subarray(0, 30)]) {
      const plainState = model.createState();
      const plain = await model.generate(plainState, { prompt, maxTokens: 24, temperature: 0, stopAtEos: false }).result;
      const specState = model.createState();
      const generation = model.generate(specState, { prompt, maxTokens: 24, temperature: 0, stopAtEos: false, speculative: true });
      const streamed = (await collect(generation)).map((item) => item.token);
      const spec = await generation.result;
      assert.deepEqual(streamed, [...plain.tokens]);
      assert.deepEqual(spec.tokens, plain.tokens);
      assert.equal(spec.text, plain.text);
      assert.equal(specState.position, plainState.position);
      assert.deepEqual(specState.logits(0), plainState.logits(0));

      assert.equal(plain.speculative.draftHeads, 1);
      assert.equal(plain.speculative.forwardPasses, 24);
      assert.deepEqual(plain.speculative.acceptedPerHead, []);
      const stats = spec.speculative;
      assert.equal(stats.draftHeads, model.info.nPredictHeads);
      assert.equal(stats.draftedPerHead.length, model.info.nPredictHeads - 1);
      assert.equal(stats.acceptedPerHead.length, model.info.nPredictHeads - 1);
      assert.equal(stats.forwardPasses + stats.acceptedPerHead.reduce((a, b) => a + b, 0), 24);
      assert.ok(Math.abs(stats.tokensPerForward - 24 / stats.forwardPasses) < 1e-9);
      assert.equal(stats.windowsByRows.length, model.info.nPredictHeads);
      assert.equal(stats.windowsByRows.reduce((a, b) => a + b, 0), stats.forwardPasses);
      assert.deepEqual(plain.speculative.windowsByRows, [24]);
    }
    const narrow = await model.generate(model.createState(), { prompt: 'the', maxTokens: 5, speculative: true, draft: 1 }).result;
    assert.equal(narrow.speculative.draftHeads, 1);
  });

  test('speculative options are validated', async () => {
    const bad = [
      [{ speculative: 1 }, TypeError], [{ speculative: true, draft: 1.5 }, TypeError],
      [{ speculative: true, draft: model.info.nPredictHeads + 1 }, RangeError], [{ draft: -1 }, RangeError],
    ];
    for (const [options, ErrorClass] of bad) {
      const g = model.generate(model.createState(), { prompt: 'the', maxTokens: 1, ...options });
      await assert.rejects(g.result, (error) => error instanceof ErrorClass && error.code === 'MGL_ERR_INVALID_ARG',
        JSON.stringify(options));
    }
  });
});
