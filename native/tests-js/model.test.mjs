// Model loading, information, tokenizer calls, errors and close().
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';

import { makeModel, megalodon, tempDir, TINY } from './fixtures.mjs';

const { Model } = megalodon;

describe('Model', () => {
  let dir;
  let modelPath;
  let model;

  before(async () => {
    dir = tempDir();
    modelPath = makeModel(dir, 'tiny.gguf', TINY);
    model = await Model.load(modelPath, { threads: 1 });
  });

  test('version names the runtime', () => {
    assert.match(megalodon.version, /megalodon/);
  });

  test('info reflects the model file', () => {
    const { info } = model;
    assert.equal(info.nLayers, TINY.layers);
    assert.equal(info.dModel, TINY.dModel);
    assert.equal(info.chunkSize, TINY.chunk);
    assert.equal(info.nVocab, TINY.vocab);
    assert.equal(info.nPredictHeads, TINY.headsMtp);
    assert.equal(info.nThreads, 1);
    assert.equal(info.swiglu, true);
    assert.ok(info.nParams > TINY.vocab * TINY.dModel, `nParams ${info.nParams}`);
    assert.ok(info.stateBytes > 0);
    assert.match(info.fingerprint, /^[0-9a-f]{16}$/);
    assert.ok(Object.isFrozen(info));
  });

  test('infoJson is the runtime JSON and agrees with info', () => {
    const json = model.infoJson();
    assert.equal(typeof json, 'object');
    const text = JSON.stringify(json);
    assert.ok(text.includes(model.info.fingerprint), 'fingerprint appears in the JSON');
    assert.ok(text.includes('megalodon'));
  });

  test('the same file gives the same fingerprint; another seed another one', async () => {
    const again = await Model.load(modelPath);
    assert.equal(again.info.fingerprint, model.info.fingerprint);
    again.close();
    const other = await Model.load(makeModel(dir, 'other.gguf', { ...TINY, seed: 8 }));
    assert.notEqual(other.info.fingerprint, model.info.fingerprint);
    other.close();
  });

  test('loading without mmap gives the same model', async () => {
    const copy = await Model.load(modelPath, { useMmap: false });
    assert.equal(copy.info.fingerprint, model.info.fingerprint);
    copy.close();
  });

  test('tokenize and detokenize round-trip text, bytes and Unicode', async () => {
    const text = 'The café served crème brûlée; 12 € — naïve 🙂 visitors.\nSecond line.';
    const tokens = await model.tokenize(text);
    assert.ok(tokens instanceof Int32Array);
    assert.ok(tokens.length > 5 && tokens.length <= Buffer.byteLength(text));
    assert.deepEqual(model.tokenizeSync(text), tokens);
    assert.deepEqual(await model.tokenize(Buffer.from(text, 'utf8')), tokens);
    assert.equal(model.detokenize(tokens), text);
    assert.equal(model.detokenize(Array.from(tokens)), text);
    for (const t of tokens) assert.ok(t >= 0 && t < model.info.nVocab);
  });

  test('addBos prepends BOS; special tokens are parsed only on request', () => {
    const { bosToken, eosToken } = model.info;
    assert.ok(bosToken >= 0 && eosToken >= 0, 'the tiny model has BOS and EOS');
    const plain = model.tokenizeSync('hello');
    const withBos = model.tokenizeSync('hello', { addBos: true });
    assert.equal(withBos[0], bosToken);
    assert.deepEqual(withBos.subarray(1), plain);

    const eosText = model.detokenize([eosToken], { renderSpecial: true });
    assert.ok(eosText.length > 0);
    assert.equal(model.detokenize([eosToken]), '', 'specials render as nothing by default');
    const parsed = model.tokenizeSync(`a${eosText}`, { parseSpecial: true });
    assert.equal(parsed[parsed.length - 1], eosToken);
    const literal = model.tokenizeSync(`a${eosText}`);
    assert.ok(!literal.includes(eosToken), 'without parseSpecial the text stays text');
  });

  test('tokenize handles a multi-megabyte text', async () => {
    const text = 'streaming state keeps memory small. '.repeat(60000);
    const tokens = await model.tokenize(text);
    assert.ok(tokens.length > 60000);
    assert.equal(model.detokenize(tokens), text);
  });

  test('tokenPiece returns the stored piece', () => {
    const piece = model.tokenPiece(model.info.bosToken);
    assert.equal(typeof piece, 'string');
    assert.ok(piece.length > 0);
    assert.throws(() => model.tokenPiece(model.info.nVocab), { code: 'MGL_ERR_INVALID_ARG' });
  });

  test('a missing file rejects with MGL_ERR_IO', async () => {
    await assert.rejects(Model.load(path.join(dir, 'missing.gguf')), (error) => {
      assert.equal(error.code, 'MGL_ERR_IO');
      assert.ok(error instanceof Error);
      assert.match(error.message, /missing\.gguf/);
      return true;
    });
  });

  test('a corrupt or truncated file rejects with MGL_ERR_FORMAT', async () => {
    const garbage = path.join(dir, 'garbage.gguf');
    fs.writeFileSync(garbage, Buffer.from('this is not a model file at all, just some text'));
    await assert.rejects(Model.load(garbage), { code: 'MGL_ERR_FORMAT' });

    const bytes = fs.readFileSync(modelPath);
    const truncated = path.join(dir, 'truncated.gguf');
    fs.writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await assert.rejects(Model.load(truncated), { code: 'MGL_ERR_FORMAT' });

    const badMagic = Buffer.from(bytes);
    badMagic.write('GGUX', 0, 'latin1');
    const badMagicPath = path.join(dir, 'bad-magic.gguf');
    fs.writeFileSync(badMagicPath, badMagic);
    await assert.rejects(Model.load(badMagicPath), { code: 'MGL_ERR_FORMAT' });
  });

  test('bad arguments are rejected with MGL_ERR_INVALID_ARG, never a crash', async () => {
    await assert.rejects(Model.load(42), { name: 'TypeError', code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(Model.load(modelPath, { threads: -1 }), { name: 'RangeError', code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(Model.load(modelPath, { threads: 1.5 }), { code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(Model.load(modelPath, { useMmap: 'yes' }), { code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(model.tokenize(123), { name: 'TypeError', code: 'MGL_ERR_INVALID_ARG' });
    await assert.rejects(model.tokenize('x', { addBos: 1 }), { code: 'MGL_ERR_INVALID_ARG' });
    assert.throws(() => model.tokenizeSync(new Float32Array(3)), { code: 'MGL_ERR_INVALID_ARG' });
    assert.throws(() => model.detokenize([model.info.nVocab]), { name: 'RangeError', code: 'MGL_ERR_INVALID_ARG' });
    assert.throws(() => model.detokenize([-1]), { code: 'MGL_ERR_INVALID_ARG' });
    assert.throws(() => model.detokenize([1.5]), { code: 'MGL_ERR_INVALID_ARG' });
    assert.throws(() => model.detokenize(['1']), { name: 'TypeError', code: 'MGL_ERR_INVALID_ARG' });
    assert.throws(() => model.detokenize(new Uint32Array([1])), { code: 'MGL_ERR_INVALID_ARG' });
    assert.throws(() => model.createState({ tsnRefresh: 'no' }), { code: 'MGL_ERR_INVALID_ARG' });
    assert.throws(() => model.setThreads(-2), { code: 'MGL_ERR_INVALID_ARG' });
    assert.throws(() => new Model(), TypeError);
  });

  test('setThreads changes the thread count', async () => {
    const m = await Model.load(modelPath, { threads: 1 });
    m.setThreads(2);
    assert.equal(m.info.nThreads, 2);
    m.close();
  });

  test('close frees the model; later calls throw MGL_ERR_CLOSED', async () => {
    const m = await Model.load(modelPath);
    const state = m.createState();
    assert.equal(m.closed, false);
    m.close();
    m.close();  // idempotent
    assert.equal(m.closed, true);
    assert.equal(state.closed, true);
    assert.throws(() => m.info, { code: 'MGL_ERR_CLOSED' });
    assert.throws(() => m.tokenizeSync('x'), { code: 'MGL_ERR_CLOSED' });
    assert.throws(() => m.createState(), { code: 'MGL_ERR_CLOSED' });
    await assert.rejects(m.tokenize('x'), { code: 'MGL_ERR_CLOSED' });
    await assert.rejects(m.ingest(state, [1, 2]), { code: 'MGL_ERR_CLOSED' });
    assert.throws(() => state.clone(), { code: 'MGL_ERR_CLOSED' });
  });

  test('close during a running call frees the model after it finishes', async () => {
    const m = await Model.load(modelPath);
    const state = m.createState();
    const tokens = new Int32Array(TINY.chunk * 64).fill(3);
    const running = m.ingest(state, tokens);
    m.close();
    const result = await running;
    assert.equal(result.tokens, tokens.length);
    assert.equal(state.closed, true);
  });
});
