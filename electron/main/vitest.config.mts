import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// The desktop shell's logic that does not need Electron itself (which cannot run here).
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('.', import.meta.url)),
    include: ['*.test.ts'],
    environment: 'node',
  },
});
