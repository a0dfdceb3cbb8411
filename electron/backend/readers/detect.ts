import { basename, extname } from 'node:path';
import type { DocumentFormat } from './types';

const BY_EXTENSION: Record<string, DocumentFormat> = {
  '.md': 'markdown', '.markdown': 'markdown', '.mdown': 'markdown', '.mkd': 'markdown',
  '.pdf': 'pdf',
  '.epub': 'epub',
  '.docx': 'docx',
  '.html': 'html', '.htm': 'html', '.xhtml': 'html',
  '.txt': 'text', '.text': 'text', '.log': 'text',
};

const CODE_EXTENSIONS = new Set(
  ('ts tsx mts cts js jsx mjs cjs py pyi pyw c h cc cpp cxx hpp hh hxx m mm rs go java kt kts scala sc groovy ' +
    'rb php pl pm lua swift dart cs fs fsx vb r jl hs lhs ml mli ex exs erl hrl clj cljs cljc elm nim zig v d ' +
    'sh bash zsh fish ps1 psm1 bat cmd sql graphql gql proto thrift ' +
    'json jsonc json5 yaml yml toml ini cfg conf properties env xml xsd xsl svg plist ' +
    'css scss sass less vue svelte astro tex sty bib cmake mk gradle sbt nix tf hcl ' +
    'asm s f f90 f95 cu cuh cl glsl hlsl wgsl metal vhdl sv ipynb diff patch').split(' ').map((e) => `.${e}`),
);

const CODE_FILE_NAMES = new Set([
  'Makefile', 'GNUmakefile', 'makefile', 'Dockerfile', 'Containerfile', 'CMakeLists.txt', 'Rakefile', 'Gemfile',
  'Jenkinsfile', 'Vagrantfile', 'Justfile', 'justfile', 'Procfile', 'BUILD', 'WORKSPACE', 'Kconfig', 'meson.build',
  '.gitignore', '.gitattributes', '.editorconfig', '.bashrc', '.zshrc', '.profile',
]);

/** Formats Folio recognises but does not read, with how to describe them to the user. */
const UNSUPPORTED_EXTENSIONS: Record<string, string> = {
  '.doc': 'an old Word document (.doc); save it as .docx',
  '.xls': 'an Excel spreadsheet', '.xlsx': 'an Excel spreadsheet',
  '.ppt': 'a PowerPoint presentation', '.pptx': 'a PowerPoint presentation',
  '.odt': 'an OpenDocument text; save it as .docx', '.ods': 'an OpenDocument spreadsheet',
  '.odp': 'an OpenDocument presentation', '.rtf': 'an RTF document; save it as .docx',
  '.pages': 'a Pages document; export it as .docx or PDF',
  '.mobi': 'a Kindle book (.mobi); convert it to EPUB', '.azw': 'a Kindle book; convert it to EPUB',
  '.azw3': 'a Kindle book; convert it to EPUB', '.djvu': 'a DjVu document', '.xps': 'an XPS document',
  '.cbz': 'a comic book archive (images)', '.cbr': 'a comic book archive (images)',
};

/** Magic numbers of binary formats, with a description for messages. */
const MAGIC: { bytes: number[]; what: string; offset?: number }[] = [
  { bytes: [0x89, 0x50, 0x4e, 0x47], what: 'an image (PNG)' },
  { bytes: [0xff, 0xd8, 0xff], what: 'an image (JPEG)' },
  { bytes: [0x47, 0x49, 0x46, 0x38], what: 'an image (GIF)' },
  { bytes: [0x52, 0x49, 0x46, 0x46], what: 'a media file (RIFF)' },
  { bytes: [0x49, 0x44, 0x33], what: 'an audio file (MP3)' },
  { bytes: [0x4f, 0x67, 0x67, 0x53], what: 'a media file (Ogg)' },
  { bytes: [0x66, 0x4c, 0x61, 0x43], what: 'an audio file (FLAC)' },
  { bytes: [0x66, 0x74, 0x79, 0x70], offset: 4, what: 'a media file (MP4/MOV/HEIC)' },
  { bytes: [0x1f, 0x8b], what: 'a compressed file (gzip)' },
  { bytes: [0x42, 0x5a, 0x68], what: 'a compressed file (bzip2)' },
  { bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], what: 'a compressed file (xz)' },
  { bytes: [0x28, 0xb5, 0x2f, 0xfd], what: 'a compressed file (zstd)' },
  { bytes: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], what: 'an archive (7z)' },
  { bytes: [0x52, 0x61, 0x72, 0x21], what: 'an archive (RAR)' },
  { bytes: [0x50, 0x4b, 0x03, 0x04], what: 'a ZIP archive' },
  { bytes: [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1], what: 'an old Office document (or an encrypted one)' },
  { bytes: [0x7f, 0x45, 0x4c, 0x46], what: 'a program (ELF)' },
  { bytes: [0x4d, 0x5a], what: 'a Windows program' },
  { bytes: [0xcf, 0xfa, 0xed, 0xfe], what: 'a program (Mach-O)' },
  { bytes: [0x00, 0x61, 0x73, 0x6d], what: 'a WebAssembly module' },
  { bytes: [0x53, 0x51, 0x4c, 0x69, 0x74, 0x65, 0x20, 0x66], what: 'a database (SQLite)' },
  { bytes: [0x41, 0x54, 0x26, 0x54, 0x46, 0x4f, 0x52, 0x4d], what: 'a DjVu document' },
];

function startsWith(head: Buffer, bytes: number[], offset = 0): boolean {
  if (head.length < offset + bytes.length) return false;
  return bytes.every((b, i) => head[offset + i] === b);
}

function binaryKind(head: Buffer): string | null {
  return MAGIC.find((m) => startsWith(head, m.bytes, m.offset))?.what ?? null;
}

function isZip(head: Buffer): boolean {
  return startsWith(head, [0x50, 0x4b, 0x03, 0x04]);
}

/** The format to read a file as, from its name and first bytes (4 KB is plenty); null => not readable. */
export function detectFormat(path: string, head: Buffer): DocumentFormat | null {
  const name = basename(path);
  const ext = extname(name).toLowerCase();
  if (CODE_FILE_NAMES.has(name)) return 'code';
  const byExtension = BY_EXTENSION[ext];
  if (byExtension) return byExtension;
  if (ext in UNSUPPORTED_EXTENSIONS) return null;
  if (CODE_EXTENSIONS.has(ext)) return 'code';

  const ascii = head.subarray(0, 1024).toString('latin1');
  if (ascii.includes('%PDF-')) return 'pdf';
  if (isZip(head)) {
    if (ascii.includes('mimetypeapplication/epub+zip')) return 'epub';
    if (ascii.includes('word/')) return 'docx';
    return null;
  }
  if (binaryKind(head)) return null;
  const start = ascii.replace(/^\ufeff|^\xef\xbb\xbf/, '').trimStart().slice(0, 64).toLowerCase();
  if (start.startsWith('<!doctype html') || start.startsWith('<html')) return 'html';
  if (start.startsWith('#!')) return 'code';
  return 'text';
}

/** Why detectFormat refused a file, for the error message: "an Excel spreadsheet". */
export function unsupportedKind(path: string, head: Buffer): string {
  const ext = extname(path).toLowerCase();
  return UNSUPPORTED_EXTENSIONS[ext] ?? binaryKind(head) ?? 'a format Folio does not read';
}
