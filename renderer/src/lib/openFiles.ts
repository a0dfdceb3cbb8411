// "Open…" from anywhere (the button, Ctrl/Cmd+O): the desktop app's dialog, else the page's
// hidden file input.
import { client } from '../api/current';
import { useDocuments } from '../stores/documents';

let fileInput: HTMLInputElement | null = null;

export function registerFileInput(input: HTMLInputElement | null): void {
  fileInput = input;
}

export function openFiles(): void {
  if (client().pickFiles) void useDocuments.getState().addFromDialog();
  else fileInput?.click();
}
