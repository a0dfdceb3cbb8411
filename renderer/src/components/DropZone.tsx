// Files dropped anywhere on the window are added to the library; an overlay says so while dragging.
import { useEffect, useRef, useState } from 'react';
import { client } from '../api/current';
import { notifyError } from '../stores/notices';
import { useDocuments } from '../stores/documents';

function carriesFiles(event: DragEvent): boolean {
  return Array.from(event.dataTransfer?.types ?? []).includes('Files');
}

/** Dropped files, and whether some of the items were folders. */
export function droppedFiles(data: DataTransfer): { files: File[]; folders: number } {
  const files: File[] = [];
  let folders = 0;
  const items = Array.from(data.items ?? []);
  if (items.length) {
    for (const item of items) {
      if (item.kind !== 'file') continue;
      const entry = (item as DataTransferItem & { webkitGetAsEntry?: () => { isDirectory: boolean } | null }).webkitGetAsEntry?.();
      const file = item.getAsFile();
      if (entry?.isDirectory) folders++;
      if (file && (!entry?.isDirectory || client().acceptsFolders)) files.push(file);
    }
    return { files, folders };
  }
  return { files: Array.from(data.files ?? []), folders: 0 };
}

export function DropZone() {
  const [dragging, setDragging] = useState(false);
  const depth = useRef(0);

  useEffect(() => {
    const enter = (e: DragEvent) => {
      if (!carriesFiles(e)) return;
      e.preventDefault();
      depth.current++;
      setDragging(true);
    };
    const over = (e: DragEvent) => {
      if (!carriesFiles(e)) return;
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
    };
    const leave = (e: DragEvent) => {
      if (!carriesFiles(e)) return;
      depth.current = Math.max(0, depth.current - 1);
      if (depth.current === 0) setDragging(false);
    };
    const drop = (e: DragEvent) => {
      if (!e.dataTransfer || !carriesFiles(e)) return;
      e.preventDefault();
      depth.current = 0;
      setDragging(false);
      const { files, folders } = droppedFiles(e.dataTransfer);
      if (folders && !client().acceptsFolders) {
        notifyError('Folders cannot be uploaded from a browser. Add them in the desktop app, or run ' +
          '"npm run folio -- add FOLDER" on the computer that runs the server; drop the files themselves here.');
      }
      if (files.length) void useDocuments.getState().addFiles(files);
    };
    window.addEventListener('dragenter', enter);
    window.addEventListener('dragover', over);
    window.addEventListener('dragleave', leave);
    window.addEventListener('drop', drop);
    return () => {
      window.removeEventListener('dragenter', enter);
      window.removeEventListener('dragover', over);
      window.removeEventListener('dragleave', leave);
      window.removeEventListener('drop', drop);
    };
  }, []);

  if (!dragging) return null;
  return (
    <div className="drop-overlay" aria-hidden="true">
      <div className="drop-card">Drop to add to the library</div>
    </div>
  );
}
