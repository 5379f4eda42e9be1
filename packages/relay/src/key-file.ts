import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
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

function keyError(file: string, what: string, err?: unknown): PortholeError {
  const reason = err instanceof Error && 'code' in err ? ` (${String(err.code)})` : '';

  return new PortholeError(ErrorCodes.KEY_FILE, `key file ${file}: ${what}${reason}`);
}

/**
 * Loads the relay's Ed25519 key, creating it on first start. The file is written to a
 * temporary name with mode 0600 and renamed into place, so a crash or a full disk never
 * leaves a half-written key behind.
 */
export async function loadOrCreateRelayKey(file: string): Promise<RelayKey> {
  let pem: string;

  try {
    await checkPrivate(file);
    pem = await readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof PortholeError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw keyError(file, 'cannot be read', err);
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

  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });

    const handle = await open(temp, 'wx', 0o600);

    try {
      await handle.writeFile(pem);
      await handle.sync();
    } finally {
      await handle.close();
    }

    await chmod(temp, 0o600);
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw keyError(file, 'cannot be created', err);
  }

  return { privateKey, publicKey, file, created: true };
}
