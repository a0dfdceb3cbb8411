// The packaging configuration, checked without packaging (electron-builder needs the Electron
// binary): every part the app runs from is packed, and what native code opens is unpacked.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');
const config = JSON.parse(fs.readFileSync(path.join(root, 'electron', 'builder.json'), 'utf8')) as {
  files: string[]; asarUnpack: string[]; extraMetadata: { main: string }; npmRebuild: boolean;
  linux: { target: string[]; maintainer?: string }; mac: { target: string[] }; win: { target: string[] };
};

function matches(file: string, pattern: string): boolean {
  return path.matchesGlob(file, pattern);
}

/** electron-builder's rule: included by a pattern and not excluded by a later "!pattern". */
function packed(file: string): boolean {
  let included = false;
  for (const pattern of config.files) {
    if (pattern.startsWith('!')) {
      if (matches(file, pattern.slice(1))) included = false;
    } else if (matches(file, pattern)) {
      included = true;
    }
  }
  return included;
}

const RUNTIME_FILES = [
  'package.json',
  'out/electron/main/main.js',
  'out/electron/preload/preload.js',
  'out/electron/backend/host/main.js',
  'out/electron/backend/backend.js',
  'out/electron/api/requests.js',
  'out/renderer/index.html',
  'out/renderer/assets/index-abc123.js',
  'out/renderer/assets/index-abc123.css',
  'native/index.js',
  'build/Release/megalodon.node',
  'models/default/folio-default.gguf',
];

describe('electron-builder configuration', () => {
  it('packs every file the app runs from, and no source maps', () => {
    for (const file of RUNTIME_FILES) expect(packed(file), file).toBe(true);
    expect(packed('out/electron/main/main.js.map')).toBe(false);
    expect(packed('electron/main/main.ts')).toBe(false);
    expect(packed('models/train.py')).toBe(false);
    expect(packed('build/Release/libmgl_core.a')).toBe(false);
  });

  it('unpacks the native addon, its loader and the default model from app.asar', () => {
    for (const file of ['build/Release/megalodon.node', 'native/index.js', 'models/default/folio-default.gguf']) {
      expect(config.asarUnpack.some((p) => matches(file, p)), file).toBe(true);
      expect(packed(file), file).toBe(true);
    }
  });

  it('starts the compiled main process, not the package main (the addon API)', () => {
    expect(config.extraMetadata.main).toBe('out/electron/main/main.js');
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { main: string };
    expect(pkg.main).not.toBe(config.extraMetadata.main);
    // The addon is N-API: it must not be rebuilt against Electron's headers.
    expect(config.npmRebuild).toBe(false);
  });

  it('builds AppImage and deb, dmg, and an NSIS installer', () => {
    expect(config.linux.target).toEqual(['AppImage', 'deb']);
    expect(config.linux.maintainer).toBeTruthy();
    expect(config.mac.target).toEqual(['dmg']);
    expect(config.win.target).toEqual(['nsis']);
  });

  it('finds the built files where the configuration says, once built', () => {
    const built = ['out/electron/main/main.js', 'out/electron/preload/preload.js', 'out/electron/backend/host/main.js'];
    const missing = built.filter((f) => !fs.existsSync(path.join(root, f)));
    expect(missing, 'run the desktop build first').toEqual([]);
  });
});

// electron-builder itself, packing into a folder with a stand-in for the Electron binary (the
// real one cannot be downloaded here): the archive holds what the app needs, unpacked where it must be.
const builderCli = path.join(root, 'node_modules', 'electron-builder', 'cli.js');
const canPack = process.platform === 'linux' && fs.existsSync(builderCli) && fs.existsSync(path.join(root, 'out', 'renderer', 'index.html'));

describe.skipIf(!canPack)('a packed app', () => {
  it('holds the compiled app in app.asar and the native parts unpacked', { timeout: 120_000 }, async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'folio-pack-'));
    const fakeElectron = path.join(work, 'electron-dist');
    fs.mkdirSync(path.join(fakeElectron, 'resources'), { recursive: true });
    fs.writeFileSync(path.join(fakeElectron, 'electron'), '#!/bin/sh\n', { mode: 0o755 });
    const out = path.join(work, 'dist');
    const run = spawnSync(process.execPath, [builderCli, '--config', 'electron/builder.json', '--linux', 'dir', '--publish', 'never',
      `-c.electronDist=${fakeElectron}`, `-c.directories.output=${out}`], { cwd: root, encoding: 'utf8' });
    expect(run.status, run.stdout + run.stderr).toBe(0);
    const resources = path.join(out, 'linux-unpacked', 'resources');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const asar = require('@electron/asar') as { listPackage(file: string): string[]; extractFile(file: string, inner: string): Buffer };
    const archive = path.join(resources, 'app.asar');
    const files = new Set(asar.listPackage(archive).map((f) => f.replace(/\\/g, '/').replace(/^\//, '')));
    for (const file of ['out/electron/main/main.js', 'out/electron/preload/preload.js', 'out/electron/backend/host/main.js',
      'out/renderer/index.html', 'native/index.js', 'build/Release/megalodon.node', 'node_modules/zod/package.json']) {
      expect(files.has(file), file).toBe(true);
    }
    expect([...files].some((f) => f.endsWith('.map'))).toBe(false);
    expect([...files].some((f) => f.startsWith('node_modules/react/') || f.startsWith('node_modules/vitest/'))).toBe(false);
    expect(JSON.parse(asar.extractFile(archive, 'package.json').toString()).main).toBe('out/electron/main/main.js');
    const unpacked = path.join(resources, 'app.asar.unpacked');
    expect(fs.existsSync(path.join(unpacked, 'build', 'Release', 'megalodon.node'))).toBe(true);
    expect(fs.existsSync(path.join(unpacked, 'native', 'index.js'))).toBe(true);
    const models = fs.existsSync(path.join(root, 'models', 'default')) ? fs.readdirSync(path.join(root, 'models', 'default')).filter((f) => f.endsWith('.gguf')) : [];
    for (const model of models) expect(fs.existsSync(path.join(unpacked, 'models', 'default', model)), model).toBe(true);
    fs.rmSync(work, { recursive: true, force: true });
  });
});
