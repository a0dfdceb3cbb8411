// Server mode: the backend's API over HTTP and WebSocket on 127.0.0.1, every request carrying
// the random token printed at start, and the built renderer served as static files.
//
//   POST /api/call/<method>     JSON params -> JSON result, or {error: {code, message}}
//   POST /api/upload?name=F     file body -> stored under DATA/uploads, then documents.add
//   GET  /api/events            WebSocket: {id, method, params} -> {id, result | error}; pushes {event}
// Authentication: `Authorization: Bearer <token>` or `?token=<token>` (browsers cannot set headers
// on WebSockets). The Host header must name this server (a defence against DNS rebinding).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { ApiError, isMethod, parseRequest, type Method, type ResultTypes } from '../api/requests';
import type { BackendEvent } from '../api/types';

export interface ApiHandler {
  request<M extends Method>(method: M, params: unknown): Promise<ResultTypes[M]>;
  onEvent(listener: (event: BackendEvent) => void): () => void;
}

export interface ServerOptions {
  port: number;              // 0 = any free port
  token?: string;
  staticDir?: string;        // the built renderer
  uploadDir: string;
}

const MAX_BODY_BYTES = 1 << 20;
const MAX_UPLOAD_BYTES = 4 * 1024 * 1024 * 1024;
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self' ws://127.0.0.1:* ws://localhost:*; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.json': 'application/json', '.woff2': 'font/woff2', '.ico': 'image/x-icon',
};

function errorBody(error: unknown): { status: number; body: { error: { code: string; message: string } } } {
  const code = error instanceof ApiError ? error.code : (error as { name?: string }).name === 'AbortError' ? 'CANCELLED' : 'INTERNAL';
  const status = code === 'INVALID_REQUEST' || code === 'UNKNOWN_METHOD' ? 400 : code === 'NOT_FOUND' ? 404
    : code === 'NOT_READY' ? 409 : code === 'CANCELLED' ? 499 : 500;
  return { status, body: { error: { code, message: error instanceof Error ? error.message : String(error) } } };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store',
    'x-content-type-options': 'nosniff' });
  res.end(data);
}

async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new ApiError('INVALID_REQUEST', `request body over ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export class FolioServer {
  readonly token: string;
  private readonly server: http.Server;
  private readonly wss: WebSocketServer;
  private port = 0;

  constructor(private readonly api: ApiHandler, private readonly options: ServerOptions) {
    this.token = options.token ?? crypto.randomBytes(24).toString('base64url');
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((error) => {
        if (!res.headersSent) {
          const { status, body } = errorBody(error);
          sendJson(res, status, body);
        } else {
          res.destroy();
        }
      });
    });
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY_BYTES });
    this.server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname !== '/api/events' || !this.hostAllowed(req) || !this.authorized(req, url)) {
        socket.write('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
        socket.destroy();
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.serveSocket(ws));
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/`;
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as { port: number }).port;
    return this.port;
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private hostAllowed(req: http.IncomingMessage): boolean {
    const host = (req.headers.host ?? '').toLowerCase();
    return host === `127.0.0.1:${this.port}` || host === `localhost:${this.port}`;
  }

  private authorized(req: http.IncomingMessage, url: URL): boolean {
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7) : url.searchParams.get('token') ?? '';
    const a = Buffer.from(given);
    const b = Buffer.from(this.token);
    return a.length === b.length && crypto.timingSafeEqual(a, b);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!this.hostAllowed(req)) {
      sendJson(res, 421, { error: { code: 'BAD_HOST', message: 'unexpected Host header' } });
      return;
    }
    if (!url.pathname.startsWith('/api/')) {
      this.serveStatic(url.pathname, res);
      return;
    }
    if (!this.authorized(req, url)) {
      sendJson(res, 401, { error: { code: 'UNAUTHORIZED', message: 'missing or wrong token' } });
      return;
    }
    if (req.method === 'POST' && url.pathname.startsWith('/api/call/')) {
      const method = decodeURIComponent(url.pathname.slice('/api/call/'.length));
      if (!isMethod(method)) throw new ApiError('UNKNOWN_METHOD', `unknown method ${method}`);
      const raw = (await readBody(req, MAX_BODY_BYTES)).toString('utf8');
      let params: unknown;
      try {
        params = raw ? JSON.parse(raw) : {};
      } catch {
        throw new ApiError('INVALID_REQUEST', 'the body is not JSON');
      }
      parseRequest(method, params);     // reject bad payloads here, before they cross to the backend
      sendJson(res, 200, { result: await this.api.request(method, params) });
      return;
    }
    if (req.method === 'POST' && url.pathname === '/api/upload') {
      sendJson(res, 200, { result: await this.upload(req, url) });
      return;
    }
    sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no route ${req.method} ${url.pathname}` } });
  }

  /** Stores an uploaded file (browser drag and drop) and adds it to the library. */
  private async upload(req: http.IncomingMessage, url: URL) {
    const name = path.basename(url.searchParams.get('name') ?? '').replace(/[^\p{L}\p{N} ._()-]/gu, '_').slice(0, 200);
    if (!name || name.startsWith('.')) throw new ApiError('INVALID_REQUEST', 'upload: give a file name (?name=)');
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_UPLOAD_BYTES) throw new ApiError('INVALID_REQUEST', 'upload: file too large');
    const dir = path.join(this.options.uploadDir, crypto.randomBytes(6).toString('hex'));
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, name);
    const tmp = `${file}.part`;
    await new Promise<void>((resolve, reject) => {
      const out = fs.createWriteStream(tmp);
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_UPLOAD_BYTES) req.destroy(new ApiError('INVALID_REQUEST', 'upload: file too large'));
      });
      req.pipe(out);
      out.on('finish', resolve);
      out.on('error', reject);
      req.on('error', reject);
    });
    fs.renameSync(tmp, file);
    return this.api.request('documents.add', { paths: [file] });
  }

  private serveStatic(pathname: string, res: http.ServerResponse): void {
    const root = this.options.staticDir;
    const headers = { 'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };
    if (!root || !fs.existsSync(path.join(root, 'index.html'))) {
      res.writeHead(200, { ...headers, 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>Folio</title><p>The Folio server is running. The user interface has not been built ' +
        '(<code>npm run build</code>); the API is at <code>/api/</code>.</p>');
      return;
    }
    const rel = path.normalize(decodeURIComponent(pathname)).replace(/^([/\\])+/, '');
    let file = path.join(root, rel);
    if (!file.startsWith(path.resolve(root)) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      file = path.join(root, 'index.html');     // client-side routes
    }
    res.writeHead(200, { ...headers, 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  }

  private serveSocket(ws: WebSocket): void {
    const unsubscribe = this.api.onEvent((event) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ event }));
    });
    ws.on('close', unsubscribe);
    ws.on('message', async (data) => {
      let id: unknown = null;
      try {
        const message = JSON.parse(String(data)) as { id?: unknown; method?: unknown; params?: unknown };
        id = message.id ?? null;
        if (typeof message.method !== 'string' || !isMethod(message.method)) {
          throw new ApiError('UNKNOWN_METHOD', `unknown method ${String(message.method)}`);
        }
        parseRequest(message.method, message.params);
        const result = await this.api.request(message.method, message.params);
        ws.send(JSON.stringify({ id, result }));
      } catch (error) {
        ws.send(JSON.stringify({ id, ...errorBody(error).body }));
      }
    });
  }
}
