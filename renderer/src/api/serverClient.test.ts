import { describe, expect, it, vi } from 'vitest';
import { ClientError } from './clientError';
import { createServerClient } from './serverClient';

class FakeSocket {
  static readonly OPEN = 1;
  static instances: FakeSocket[] = [];
  readyState = 0;
  sent: string[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.instances.push(this);
  }
  send(data: string) {
    this.sent.push(data);
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  receive(message: unknown) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  drop() {
    this.readyState = 3;
    this.onclose?.();
  }
}

function setup(status = 200) {
  FakeSocket.instances = [];
  const fetchImpl = vi.fn(async () => new Response('{}', { status }));
  const client = createServerClient({ origin: 'http://127.0.0.1:4711', token: 't0k', WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
    fetchImpl: fetchImpl as unknown as typeof fetch, reconnectDelayMs: () => 0 });
  return { client, fetchImpl, socket: () => FakeSocket.instances.at(-1)! };
}

describe('server client', () => {
  it('connects with the token and sends calls queued before the socket opened', async () => {
    const { client, socket } = setup();
    expect(socket().url).toBe('ws://127.0.0.1:4711/api/events?token=t0k');
    const result = client.call('documents.list', {});
    expect(socket().sent).toEqual([]);
    socket().open();
    const sent = JSON.parse(socket().sent[0]);
    expect(sent).toMatchObject({ method: 'documents.list', params: {} });
    socket().receive({ id: sent.id, result: [] });
    await expect(result).resolves.toEqual([]);
    expect(client.connection).toBe('open');
  });

  it('rejects with the backend error code', async () => {
    const { client, socket } = setup();
    socket().open();
    const result = client.call('documents.get', { docId: 'nope' });
    const { id } = JSON.parse(socket().sent[0]);
    socket().receive({ id, error: { code: 'NOT_FOUND', message: 'no document nope' } });
    await expect(result).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'no document nope' });
  });

  it('passes pushed events to listeners', () => {
    const { client, socket } = setup();
    const listener = vi.fn();
    client.onEvent(listener);
    socket().open();
    socket().receive({ event: { type: 'answer-token', requestId: 'a1', text: 'hi' } });
    expect(listener).toHaveBeenCalledWith({ type: 'answer-token', requestId: 'a1', text: 'hi' });
  });

  it('fails requests in flight when the socket drops, then reconnects', async () => {
    const { client, socket } = setup();
    const states: string[] = [];
    client.onConnection((s) => states.push(s));
    socket().open();
    const first = socket();
    const result = client.call('engine.status', {});
    first.drop();
    await expect(result).rejects.toBeInstanceOf(ClientError);
    await vi.waitFor(() => expect(FakeSocket.instances.length).toBe(2));
    socket().open();
    expect(states).toEqual(['open', 'closed', 'connecting', 'open']);
  });

  it('stops retrying when the server refuses the token', async () => {
    const { client, socket } = setup(401);
    socket().drop();
    await vi.waitFor(() => expect(client.connection).toBe('unauthorized'));
    await expect(client.call('engine.status', {})).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    expect(FakeSocket.instances.length).toBe(1);
  });

  it('uploads files with the token and returns the added documents', async () => {
    const { client, fetchImpl } = setup();
    fetchImpl.mockResolvedValueOnce(new Response(JSON.stringify({ result: [{ id: 'd1' }] }), { status: 200 }));
    const added = await client.addFiles([new File(['hello'], 'a book.md')]);
    expect(added).toEqual([{ id: 'd1' }]);
    const [url, init] = fetchImpl.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe('http://127.0.0.1:4711/api/upload?name=a%20book.md');
    expect(init.headers).toEqual({ authorization: 'Bearer t0k' });
  });

  it('reports a failed upload with the server message', async () => {
    const { client, fetchImpl } = setup();
    fetchImpl.mockResolvedValueOnce(new Response(JSON.stringify({ error: { code: 'INVALID_REQUEST', message: 'upload: file too large' } }), { status: 400 }));
    await expect(client.addFiles([new File(['x'], 'big.pdf')])).rejects.toMatchObject({ message: 'big.pdf: upload: file too large' });
  });
});
