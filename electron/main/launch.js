#!/usr/bin/env node
// `npm start`: checks that an Electron binary is installed, builds the app, and starts it.
// Without a binary (an install that skipped the download, or a machine without a display
// server), it says so and points to server mode instead.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
// The backend, the desktop shell (main and preload), the renderer.
const BUILD_STEPS = [
  [['typescript', 'bin/tsc'], '-p', 'electron/tsconfig.json'],
  [['typescript', 'bin/tsc'], '-p', 'electron/main/tsconfig.json'],
  [['vite', 'bin/vite.js'], 'build', '--config', 'renderer/vite.config.mts', '--logLevel', 'warn'],
];

function toolPath([pkg, file]) {
  return path.join(path.dirname(require.resolve(`${pkg}/package.json`, { paths: [root] })), file);
}

function electronBinary() {
  try {
    // In Node, the electron package exports the path of its binary (and throws when it has none).
    const binary = require('electron');
    return typeof binary === 'string' && fs.existsSync(binary) ? { binary } : { reason: `the Electron binary ${binary} is missing` };
  } catch (error) {
    return { reason: error && error.code === 'MODULE_NOT_FOUND' ? 'the electron package is not installed' : String(error.message || error) };
  }
}

function main() {
  const found = electronBinary();
  if (!found.binary) {
    process.stderr.write([
      'folio: the desktop app cannot start here: no Electron binary is installed',
      `  (${found.reason}).`,
      '  Install one where downloads work:  npm install --save-dev electron   (without ELECTRON_SKIP_BINARY_DOWNLOAD)',
      '  Or use Folio in a browser:         npm run serve   then open the address it prints.',
      '',
    ].join('\n'));
    return 1;
  }
  if (!process.argv.includes('--no-build')) {
    for (const [tool, ...args] of BUILD_STEPS) {
      const built = spawnSync(process.execPath, [toolPath(tool), ...args], { cwd: root, stdio: 'inherit' });
      if (built.status !== 0) {
        process.stderr.write('folio: the build failed; see the messages above.\n');
        return built.status || 1;
      }
    }
  }
  const env = { ...process.env };
  delete env.ELECTRON_RUN_AS_NODE;
  const args = [path.join(root, 'out', 'electron', 'main', 'main.js'), ...process.argv.slice(2).filter((a) => a !== '--no-build')];
  const child = spawn(found.binary, args, { cwd: root, stdio: 'inherit', env });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(signal ? 1 : code ?? 0));
  return undefined;
}

const code = main();
if (code !== undefined) process.exitCode = code;
