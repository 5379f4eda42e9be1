import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

import { ErrorCodes, PortholeError } from '@porthole/shared';

/** The relay's signing key. */
export interface RelayKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  file: string;
  created: boolean;
}

/** `$XDG_CONFIG_HOME/porthole/relay-key.pem`, with the usual fallbacks on each OS. */
export function defaultKeyFile(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env['XDG_CONFIG_HOME'] ||
    (process.platform === 'win32' && env['APPDATA']) ||
    join(homedir(), '.config');

  return join(base, 'porthole', 'relay-key.pem');
}

// What the system's error codes mean to someone who has to fix them.
const REASONS: Record<string, string> = {
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is used up',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ENOTDIR: 'part of the path is not a directory',
  EISDIR: 'it is a directory',
};

function keyError(file: string, what: string, err?: unknown): PortholeError {
  const code = err instanceof Error && 'code' in err ? String(err.code) : undefined;
  const words = code === undefined ? undefined : REASONS[code];
  const reason =
    code === undefined ? '' : words === undefined ? ` (${code})` : `: ${words} (${code})`;

  return new PortholeError(ErrorCodes.KEY_FILE, `key file ${file}: ${what}${reason}`);
}

/**
 * Loads the relay's Ed25519 key, creating it on first start unless `create` is false. The file
 * is written to a temporary name in the same directory with mode 0600, flushed to disk and
 * renamed into place, so a crash or a full disk never leaves a half-written key behind.
 */
export async function loadOrCreateRelayKey(
  file: string,
  { create = true }: { create?: boolean } = {},
): Promise<RelayKey> {
  let pem: string;

  try {
    await checkPrivate(file);
    pem = await readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof PortholeError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw keyError(file, 'cannot be read', err);
    }

    if (!create) {
      throw keyError(
        file,
        'does not exist: name the key file the relay runs with (a new key would sign ' +
          'tokens that no relay accepts)',
      );
    }

    return createKey(file);
  }

  return parseKey(file, pem);
}

// A key that others can read is a key others may have copied: every token it signed would
// then be forgeable. OpenSSH refuses such keys for the same reason.
async function checkPrivate(file: string): Promise<void> {
  const info = await stat(file);

  if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
    throw keyError(
      file,
      `other users can read it (mode ${(info.mode & 0o777).toString(8)}); run chmod 600 ${file}`,
    );
  }
}

function parseKey(file: string, pem: string): RelayKey {
  let privateKey: KeyObject;

  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw keyError(file, 'is not a PEM private key');
  }

  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw keyError(file, `holds a ${privateKey.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  }

  return { privateKey, publicKey: createPublicKey(privateKey), file, created: false };
}

async function createKey(file: string): Promise<RelayKey> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
  const temp = `${file}.${process.pid}.tmp`;
  const made: string[] = [];

  try {
    await makeDirectories(dirname(file), made);
    await writeDurably(temp, pem);
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    // Directories made for a key that never arrived would only puzzle whoever finds them.
    for (const dir of made.reverse()) await rmdir(dir).catch(() => undefined);
    throw keyError(file, 'cannot be created', err);
  }

  // The key is in place either way; flushing its directory only makes the rename survive a
  // power cut, and some file systems refuse to flush a directory at all.
  await syncDirectory(dirname(file)).catch(() => undefined);

  return { privateKey, publicKey, file, created: true };
}

// mkdir -p, one level at a time, noting each directory it made. A recursive mkdir reports
// ENOENT for a parent it could not make (on a read-only file system, say); one level at a
// time, the error says what really went wrong.
async function makeDirectories(dir: string, made: string[]): Promise<void> {
  try {
    await mkdir(dir, { mode: 0o700 });
    made.push(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;

    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(dir) === dir) throw err;

    await makeDirectories(dirname(dir), made);
    await mkdir(dir, { mode: 0o700 });
    made.push(dir);
  }
}

// Written and flushed under its temporary name, with mode 0600 from the first byte.
async function writeDurably(temp: string, pem: string | Buffer): Promise<void> {
  const handle = await open(temp, 'wx', 0o600);

  try {
    await handle.writeFile(pem);
    await handle.sync();
  } finally {
    await handle.close();
  }

  // A umask can only take bits off 0600: chmod puts back any it took.
  await chmod(temp, 0o600);
}

// Windows cannot open a directory to flush it.
async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === 'win32') return;

  const handle = await open(dir, 'r');

  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
