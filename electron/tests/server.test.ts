// Server mode: token and Host checks, validation, the WebSocket event stream, uploads, and the
// backend host process restarting after a crash.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { BackendEvent } from '../api/types';
import { BackendProcess } from '../backend/host/supervisor';
import { FolioServer } from '../server/server';
import { prose, tempDir, testModelPath } from './helpers';

function call(port: number, method: string, body: unknown, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; json: any }>((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, path: `/api/call/${method}`, method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': data.length, ...headers } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

describe('server mode', () => {
  let dir: string;
  let backend: BackendProcess;
  let server: FolioServer;
  let port: number;
  let auth: Record<string, string>;

  beforeAll(async () => {
    dir = tempDir('server');
    backend = new BackendProcess({ dataDir: path.join(dir, 'data'), modelPath: testModelPath(), threads: 2 });
    await backend.start();
    server = new FolioServer(backend, { port: 0, uploadDir: path.join(dir, 'data', 'uploads') });
    port = await server.listen();
    auth = { authorization: `Bearer ${server.token}` };
  });
  afterAll(async () => {
    await server.close();
    await backend.close();
  });

  it('binds 127.0.0.1 and requires the token', async () => {
    expect(server.url).toBe(`http://127.0.0.1:${port}/`);
    expect((await call(port, 'documents.list', {})).status).toBe(401);
    expect((await call(port, 'documents.list', {}, { authorization: 'Bearer wrong' })).status).toBe(401);
    const ok = await call(port, 'documents.list', {}, auth);
    expect(ok.status).toBe(200);
    expect(ok.json.result).toEqual([]);
  });

  it('rejects a foreign Host header, unknown methods and invalid payloads', async () => {
    expect((await call(port, 'documents.list', {}, { ...auth, host: 'evil.example:80' })).status).toBe(421);
    expect((await call(port, 'nope', {}, auth)).status).toBe(400);
    const bad = await call(port, 'documents.get', { docId: 5 }, auth);
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('INVALID_REQUEST');
  });

  it('streams events over an authenticated WebSocket while a document is uploaded and read', async () => {
    await expect(new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/api/events`);
      ws.on('open', () => reject(new Error('opened without a token')));
      ws.on('error', resolve);
    })).resolves.toBeTruthy();

    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/events?token=${server.token}`);
    const events: BackendEvent[] = [];
    await new Promise((resolve) => ws.on('open', resolve));
    const done = new Promise<void>((resolve) => {
      ws.on('message', (raw) => {
        const message = JSON.parse(String(raw));
        if (message.event) {
          events.push(message.event);
          if (message.event.type === 'progress' && message.event.progress.phase === 'done') resolve();
        }
      });
    });
    const body = Buffer.from(prose(40, 3));
    const upload = await new Promise<any>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/api/upload?name=notes.txt', method: 'POST',
        headers: { ...auth, 'content-length': body.length } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve(JSON.parse(text)));
      });
      req.on('error', reject);
      req.end(body);
    });
    expect(upload.result[0].title).toBe('notes');
    await done;
    expect(events.some((e) => e.type === 'progress' && e.progress.phase === 'ingesting')).toBe(true);

    // Requests over the socket too.
    const reply = await new Promise<any>((resolve) => {
      ws.on('message', (raw) => {
        const message = JSON.parse(String(raw));
        if (message.id === 7) resolve(message);
      });
      ws.send(JSON.stringify({ id: 7, method: 'documents.list', params: {} }));
    });
    expect(reply.result[0].status).toBe('ready');
    ws.close();
  });

  it('restarts the backend after it is killed and keeps the library', async () => {
    const pid = backend.pid!;
    const pending = backend.request('engine.status', {});
    await pending;
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    const docs = await backend.request('documents.list', {});
    expect(backend.pid).not.toBe(pid);
    expect(backend.restartCount).toBe(1);
    expect(docs[0].status).toBe('ready');
  });

  it('serves a page with a strict Content-Security-Policy', async () => {
    const res = await new Promise<http.IncomingMessage>((resolve) => http.get({ host: '127.0.0.1', port, path: '/' }, resolve));
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
    res.resume();
    expect(fs.existsSync(dir)).toBe(true);
  });
});
