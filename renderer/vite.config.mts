import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig, type Plugin } from 'vite';

// The same policy the server sends as a header; in the desktop app the page carries it itself.
// Only in the build: the dev server's hot reload needs inline scripts.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self' ws://127.0.0.1:* ws://localhost:*; object-src 'none'; base-uri 'none'";

function contentSecurityPolicy(): Plugin {
  return {
    name: 'folio-csp',
    apply: 'build',
    transformIndexHtml: () => [{ tag: 'meta', attrs: { 'http-equiv': 'Content-Security-Policy', content: CSP }, injectTo: 'head-prepend' }],
  };
}

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  plugins: [react(), contentSecurityPolicy()],
  build: {
    outDir: fileURLToPath(new URL('../out/renderer', import.meta.url)),
    emptyOutDir: true,
    sourcemap: true,
    target: 'es2022',
    modulePreload: { polyfill: false },
  },
  // `vite` for development: the API goes to a running `folio serve` (FOLIO_DEV_SERVER), so open
  // http://localhost:5173/#token=TOKEN with the token that server printed.
  server: {
    port: 5173,
    strictPort: true,
    proxy: { '/api': { target: process.env.FOLIO_DEV_SERVER ?? 'http://127.0.0.1:4711', changeOrigin: true, ws: true } },
  },
});
