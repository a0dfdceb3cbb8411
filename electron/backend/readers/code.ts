import { promises as fs, type Dirent, type Stats } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { decodeBytes, normaliseNewlines } from './encoding';
import { ReaderError, formatBytes, throwIfAborted } from './errors';
import { maxBytesOf, type SourceFile } from './source';
import { readTextFile } from './text';
import type { ReadOptions, ReadResult, Section } from './types';

/** Folders that never hold source worth reading: VCS data, dependencies, build output, caches. */
const SKIPPED_FOLDERS = new Set([
  '.git', '.hg', '.svn', 'node_modules', 'vendor', 'dist', 'build', 'out', 'target',
  '__pycache__', '.venv', 'venv', '.mypy_cache', '.pytest_cache', '.ruff_cache', '.tox', '.next',
]);
const LOCKFILES = new Set([
  'package-lock.json', 'npm-shrinkwrap.json', 'yarn.lock', 'pnpm-lock.yaml', 'bun.lockb', 'Cargo.lock',
  'Gemfile.lock', 'poetry.lock', 'Pipfile.lock', 'composer.lock', 'go.sum', 'flake.lock', 'uv.lock',
  'pubspec.lock', 'mix.lock', 'Podfile.lock', 'packages.lock.json',
]);
const GENERATED_NAME = /\.(?:min\.(?:js|mjs|cjs|css)|bundle\.js|chunk\.js|js\.map|css\.map)$/i;
/** Extensions of files that are binary by nature; they are counted as binary without being read. */
const BINARY_EXTENSIONS = new Set(
  ('png jpg jpeg gif bmp ico icns webp tif tiff psd heic avif mp3 mp4 m4a wav ogg flac mov avi mkv webm ' +
    'zip gz tgz bz2 xz 7z rar zst tar jar war whl apk dmg iso exe dll so dylib a lib o obj class pyc pyo ' +
    'wasm bin dat db sqlite sqlite3 ttf otf woff woff2 eot pdf doc docx xls xlsx ppt pptx odt epub ' +
    'npy npz pt pth onnx safetensors gguf ckpt h5 pkl parquet').split(' '),
);
const MAX_FILE_BYTES = 1024 * 1024;
/** A file averaging longer lines than this (over a few KB) is minified or generated data. */
const MINIFIED_MEAN_LINE = 500;
const EXAMPLES_IN_WARNING = 3;

export interface CodeFile {
  /** Relative to the folder root, forward slashes. */
  path: string;
  text: string;
  bytes: number;
}

class SkipCounter {
  readonly names: string[] = [];
  count = 0;
  add(path: string): void {
    this.count++;
    if (this.names.length < EXAMPLES_IN_WARNING) this.names.push(path);
  }
  describe(what: string): string | null {
    if (this.count === 0) return null;
    const more = this.count > this.names.length ? ', …' : '';
    return `skipped ${this.count} ${what}${this.count === 1 ? '' : 's'} (${this.names.join(', ')}${more})`;
  }
}

interface IgnoreLayer {
  /** Folder (relative, '' = root) that the rules are relative to. */
  base: string;
  rules: Ignore;
}

function newRules(): Ignore {
  return ignore({ ignorecase: process.platform === 'darwin' || process.platform === 'win32' });
}

/** Git semantics: a deeper .gitignore overrides a shallower one, and later rules override earlier ones. */
function isIgnored(relPath: string, isDir: boolean, layers: readonly IgnoreLayer[]): boolean {
  let ignored = false;
  for (const layer of layers) {
    const local = layer.base ? relPath.slice(layer.base.length + 1) : relPath;
    let result: { ignored: boolean; unignored: boolean };
    try {
      result = layer.rules.test(isDir ? `${local}/` : local);
    } catch {
      // Names the matcher cannot take (e.g. "...") match no rule.
      continue;
    }
    if (result.ignored) ignored = true;
    else if (result.unignored) ignored = false;
  }
  return ignored;
}

async function readOptionalText(path: string): Promise<string | null> {
  try {
    return await fs.readFile(path, 'utf8');
  } catch {
    return null;
  }
}

const byCodeUnits = (a: Dirent, b: Dirent): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function isMinified(text: string): boolean {
  if (text.length < 4096) return false;
  let lines = 1;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lines++;
  return text.length / lines > MINIFIED_MEAN_LINE;
}

class FolderWalk {
  readonly files: CodeFile[] = [];
  readonly binary = new SkipCounter();
  readonly large = new SkipCounter();
  readonly generated = new SkipCounter();
  readonly linkedFolders = new SkipCounter();
  readonly unreadable = new SkipCounter();
  readonly invalidUtf8 = new SkipCounter();
  totalBytes = 0;

  constructor(
    private readonly root: string,
    private readonly rootName: string,
    private readonly options: ReadOptions,
  ) {}

  async run(): Promise<void> {
    const layers: IgnoreLayer[] = [];
    const exclude = await readOptionalText(join(this.root, '.git', 'info', 'exclude'));
    if (exclude !== null) layers.push({ base: '', rules: newRules().add(exclude) });
    await this.walk(this.root, '', layers);
  }

  private async walk(dirAbs: string, dirRel: string, parentLayers: readonly IgnoreLayer[]): Promise<void> {
    throwIfAborted(this.options.signal, this.rootName);
    let entries: Dirent[];
    try {
      entries = await fs.readdir(dirAbs, { withFileTypes: true });
    } catch {
      this.unreadable.add(dirRel || '.');
      return;
    }
    entries.sort(byCodeUnits);
    let layers = parentLayers;
    if (entries.some((e) => e.name === '.gitignore' && !e.isDirectory())) {
      const rules = await readOptionalText(join(dirAbs, '.gitignore'));
      if (rules !== null) layers = [...parentLayers, { base: dirRel, rules: newRules().add(rules) }];
    }
    for (const entry of entries) {
      const abs = join(dirAbs, entry.name);
      const rel = dirRel ? `${dirRel}/${entry.name}` : entry.name;
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        // Linked folders are never followed (no loops, no escaping the folder); linked files are read.
        const target = await fs.stat(abs).catch(() => null);
        if (target?.isDirectory()) {
          if (!isIgnored(rel, true, layers)) this.linkedFolders.add(rel);
          continue;
        }
        isDir = false;
        isFile = target?.isFile() ?? false;
        if (!isFile) continue;
      }
      if (isDir) {
        if (SKIPPED_FOLDERS.has(entry.name) || isIgnored(rel, true, layers)) continue;
        await this.walk(abs, rel, layers);
      } else if (isFile && !isIgnored(rel, false, layers)) {
        await this.addFile(abs, rel, entry.name);
      }
    }
  }

  private async addFile(abs: string, rel: string, name: string): Promise<void> {
    throwIfAborted(this.options.signal, this.rootName);
    if (LOCKFILES.has(name) || GENERATED_NAME.test(name)) return this.generated.add(rel);
    const dot = name.lastIndexOf('.');
    if (dot > 0 && BINARY_EXTENSIONS.has(name.slice(dot + 1).toLowerCase())) return this.binary.add(rel);
    let stats: Stats;
    try {
      stats = await fs.stat(abs);
    } catch {
      return this.unreadable.add(rel);
    }
    if (stats.size === 0) return;
    if (stats.size > MAX_FILE_BYTES) return this.large.add(rel);
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(abs, { signal: this.options.signal });
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw error;
      return this.unreadable.add(rel);
    }
    let text: string;
    try {
      const decoded = decodeBytes(bytes, name);
      if (decoded.replacedInvalid) this.invalidUtf8.add(rel);
      text = normaliseNewlines(decoded.text);
    } catch (error) {
      if (error instanceof ReaderError && error.code === 'BINARY') return this.binary.add(rel);
      throw error;
    }
    if (!/\S/.test(text)) return;
    if (isMinified(text)) return this.generated.add(rel);
    this.totalBytes += bytes.length;
    if (this.totalBytes > maxBytesOf(this.options)) {
      throw new ReaderError(
        'TOO_LARGE',
        `${this.rootName} holds more than ${formatBytes(maxBytesOf(this.options))} of text files; choose a smaller folder`,
      );
    }
    this.files.push({ path: rel, text, bytes: bytes.length });
  }

  warnings(): string[] {
    const lines = [
      this.binary.describe('binary file'),
      this.large.describe(`file over ${formatBytes(MAX_FILE_BYTES)}`),
      this.generated.describe('generated or minified file'),
      this.linkedFolders.describe('symbolic link to a folder'),
      this.unreadable.describe('unreadable file'),
    ];
    if (this.invalidUtf8.count > 0) {
      lines.push(
        `${this.invalidUtf8.count} file${this.invalidUtf8.count === 1 ? ' has' : 's have'} bytes that are not valid UTF-8, ` +
          `replaced with \u201c\ufffd\u201d (${this.invalidUtf8.names.join(', ')}${this.invalidUtf8.count > this.invalidUtf8.names.length ? ', …' : ''})`,
      );
    }
    return lines.filter((line): line is string => line !== null);
  }
}

/** "=== src/foo.ts ===\n"; control characters in a path would break the header line. */
function headerLine(path: string): string {
  return `=== ${path.replace(/[\u0000-\u001f\u007f]/g, '?')} ===\n`;
}

/** One text with a header line and a 'file' section per file. */
export function assembleFiles(files: readonly CodeFile[]): { text: string; sections: Section[] } {
  const parts: string[] = [];
  const sections: Section[] = [];
  let offset = 0;
  for (const file of files) {
    if (parts.length > 0) {
      parts.push('\n');
      offset += 1;
    }
    const body = file.text.endsWith('\n') ? file.text : `${file.text}\n`;
    const block = headerLine(file.path) + body;
    sections.push({ label: file.path, kind: 'file', level: 1, charStart: offset, charEnd: offset + block.length, path: file.path });
    parts.push(block);
    offset += block.length;
  }
  return { text: parts.join(''), sections };
}

/**
 * The 1-based line, within the section's file, of a character offset into
 * result.text. Offsets in the header line count as line 1, offsets past the
 * file's end as its last line.
 */
export function lineOfOffset(result: ReadResult, section: Section, charOffset: number): number {
  const text = result.text;
  const headerEnd = text.indexOf('\n', section.charStart);
  const contentStart = headerEnd === -1 || headerEnd >= section.charEnd ? section.charStart : headerEnd + 1;
  const target = Math.min(Math.max(charOffset, contentStart), Math.max(contentStart, section.charEnd - 1));
  let line = 1;
  for (let i = text.indexOf('\n', contentStart); i !== -1 && i < target; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

export async function readCodeFolder(path: string, options: ReadOptions): Promise<ReadResult> {
  const name = basename(resolve(path)) || path;
  const walk = new FolderWalk(path, name, options);
  await walk.run();
  const warnings = walk.warnings();
  if (walk.files.length === 0) {
    const why = warnings.length > 0 ? ` (${warnings.join('; ')})` : '';
    throw new ReaderError('EMPTY', `The folder ${name} has no text files Folio can read${why}`);
  }
  const { text, sections } = assembleFiles(walk.files);
  return { title: name, format: 'code', text, sections, pages: [], sourceBytes: walk.totalBytes, warnings };
}

export async function readCodeFile(file: SourceFile, options: ReadOptions): Promise<ReadResult> {
  const { text, warnings } = await readTextFile(file, options);
  const assembled = assembleFiles([{ path: file.name, text, bytes: file.size }]);
  return { title: file.name, format: 'code', ...assembled, pages: [], sourceBytes: file.size, warnings };
}
