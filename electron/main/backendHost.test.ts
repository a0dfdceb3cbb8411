import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { BackendEvent, EngineStatus } from '../api/types';
import type { FromHost, HostOptions, ToHost } from '../api/host-protocol';
import { BackendHost, type HostProcess } from './backendHost';

const READY: EngineStatus = { state: 'ready', model: null, activeJob: null, queue: [], rssBytes: 1, dataDir: null };

class FakeHost extends EventEmitter implements HostProcess {
  sent: ToHost[] = [];
  killed = false;
  constructor(readonly pid: number, readonly options: HostOptions) {
    super();
  }
  postMessage(message: ToHost): void {
    this.sent.push(message);
    if (message.kind === 'shutdown') setImmediate(() => this.exit(0));
  }
  kill(): boolean {
    this.killed = true;
    this.exit(9);
    return true;
  }
  reply(message: FromHost): void {
    this.emit('message', message);
  }
  exit(code: number): void {
    this.emit('exit', code);
  }
}

function setup() {
  const hosts: FakeHost[] = [];
  const events: BackendEvent[] = [];
  let clock = 0;
  const backend = new BackendHost((options) => {
    const host = new FakeHost(100 + hosts.length, options);
    hosts.push(host);
    return host;
  }, { dataDir: '/data', modelPath: '/m.gguf' }, () => (clock += 60_000));
  backend.onEvent((e) => events.push(e));
  return { backend, hosts, events };
}

describe('BackendHost', () => {
  it('waits for the backend to be ready, then routes requests and answers by id', async () => {
    const { backend, hosts } = setup();
    const answer = backend.request('documents.list', {});
    await Promise.resolve();
    expect(hosts).toHaveLength(1);
    expect(hosts[0].sent).toEqual([]);
    hosts[0].reply({ kind: 'ready', status: READY });
    await new Promise((r) => setImmediate(r));
    const request = hosts[0].sent[0] as Extract<ToHost, { kind: 'request' }>;
    expect(request).toMatchObject({ kind: 'request', method: 'documents.list', params: {} });
    hosts[0].reply({ kind: 'response', id: request.id, result: [] });
    await expect(answer).resolves.toEqual([]);
    expect(backend.status.state).toBe('ready');
  });

  it('passes errors on with their codes', async () => {
    const { backend, hosts } = setup();
    void backend.start();
    hosts[0].reply({ kind: 'ready', status: READY });
    const answer = backend.request('documents.get', { docId: 'x' });
    await new Promise((r) => setImmediate(r));
    const { id } = hosts[0].sent[0] as Extract<ToHost, { kind: 'request' }>;
    hosts[0].reply({ kind: 'response', id, error: { code: 'NOT_FOUND', message: 'no document x' } });
    await expect(answer).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'no document x' });
  });

  it('restarts a backend that dies, failing what was in flight', async () => {
    const { backend, hosts, events } = setup();
    void backend.start();
    hosts[0].reply({ kind: 'ready', status: READY });
    const answer = backend.request('ask', { requestId: 'r1', question: 'q', docIds: ['d'] });
    await new Promise((r) => setImmediate(r));
    hosts[0].exit(139);
    await expect(answer).rejects.toMatchObject({ code: 'ENGINE_RESTARTED' });
    expect(hosts).toHaveLength(2);
    expect(events.filter((e) => e.type === 'engine').map((e) => (e as { status: EngineStatus }).status.state)).toEqual(['ready', 'restarting']);
    hosts[1].reply({ kind: 'ready', status: READY });
    expect(backend.status.state).toBe('ready');
  });

  it('does not restart a backend that cannot start, and says why', async () => {
    const { backend, hosts } = setup();
    void backend.start();
    hosts[0].reply({ kind: 'fatal', message: 'model file not found: /m.gguf' });
    hosts[0].exit(1);
    await expect(backend.request('engine.status', {})).rejects.toMatchObject({ code: 'ENGINE_FAILED', message: 'model file not found: /m.gguf' });
    expect(hosts).toHaveLength(1);
    expect(backend.status).toMatchObject({ state: 'error', message: 'model file not found: /m.gguf' });
  });

  it('gives up after many quick crashes', () => {
    const hosts: FakeHost[] = [];
    const backend = new BackendHost((o) => {
      const h = new FakeHost(hosts.length, o);
      hosts.push(h);
      return h;
    }, { dataDir: '/d', modelPath: '/m' }, () => 0);
    void backend.start();
    for (let i = 0; i < 6; i++) hosts[i].exit(1);
    expect(hosts).toHaveLength(6);
    expect(backend.status.state).toBe('error');
  });

  it('restarts with another model on request', async () => {
    const { backend, hosts } = setup();
    void backend.start();
    hosts[0].reply({ kind: 'ready', status: READY });
    const restarted = backend.restart({ dataDir: '/data', modelPath: '/other.gguf' });
    await new Promise((r) => setImmediate(r));
    expect(hosts[0].sent.at(-1)).toEqual({ kind: 'shutdown' });
    await new Promise((r) => setImmediate(r));
    expect(hosts[1].options.modelPath).toBe('/other.gguf');
    hosts[1].reply({ kind: 'ready', status: READY });
    await restarted;
    expect(backend.status.state).toBe('ready');
  });

  it('stops the backend by asking it to shut down', async () => {
    const { backend, hosts } = setup();
    void backend.start();
    hosts[0].reply({ kind: 'ready', status: READY });
    await backend.stop();
    expect(hosts[0].sent).toEqual([{ kind: 'shutdown' }]);
    expect(hosts).toHaveLength(1);
    await expect(backend.request('engine.status', {})).rejects.toMatchObject({ code: 'CLOSED' });
  });
});
