/**
 * Node-only checkpoint writing, imported dynamically so browser and edge bundles never pull node:fs.
 * A checkpoint is written to a temporary file next to the target, flushed to disk, then renamed over
 * the target: a crash at any point leaves either the previous checkpoint or the new one, never a
 * torn file.
 */
import { open, rename, unlink } from 'node:fs/promises';

export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tempPath = `${path}.tmp-${process.pid}-${Date.now().toString(36)}`;
  const handle = await open(tempPath, 'w');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(tempPath).catch(() => undefined);
    throw err;
  }
  await handle.close();
  await rename(tempPath, path);
}
