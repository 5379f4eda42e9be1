import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

/** Entry points of the built command-line programs. */
export const RELAY_CLI = join(dirname(require.resolve('@porthole/relay')), 'cli.js');
export const AGENT_CLI = join(dirname(require.resolve('@porthole/agent')), 'cli.js');

/** A child process whose output is kept line by line, for waiting and for asserting on. */
export class Program {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  /** The lines printed on stdout alone (they appear in `lines` too, among stderr's). */
  readonly stdout: string[] = [];
  readonly exited: Promise<number | null>;
  #watchers: { test: (line: string) => boolean; resolve: (line: string) => void }[] = [];

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(command, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // 'close', not 'exit': it comes once the output has been read to the end as well.
    this.exited = new Promise((resolve) => this.child.once('close', (code) => resolve(code)));
    this.#collect(this.child.stdout, this.stdout);
    this.#collect(this.child.stderr);
  }

  /** All output so far as one string. */
  get output(): string {
    return this.lines.join('\n');
  }

  /** Log records (JSON lines) printed so far. */
  get records(): Record<string, unknown>[] {
    return this.lines.flatMap((line) => {
      if (!line.startsWith('{')) return [];
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }

  /** Resolves with the first line (past or future) that passes `test`. */
  waitForLine(test: RegExp | ((line: string) => boolean), timeoutMs = 15_000): Promise<string> {
    const check = typeof test === 'function' ? test : (line: string) => test.test(line);
    const seen = this.lines.find(check);

    if (seen !== undefined) return Promise.resolve(seen);

    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(`no line matching ${String(test)} within ${timeoutMs} ms:\n${this.output}`),
        );
      }, timeoutMs);

      this.#watchers.push({
        test: check,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  }

  /** Peak and current resident memory in bytes, from /proc. */
  memory(): { rss: number; peak: number } {
    const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    const read = (field: string) =>
      Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]) * 1024;

    return { rss: read('VmRSS'), peak: read('VmHWM') };
  }

  /** Stops the process (SIGTERM, then SIGKILL) and waits for it. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      const code = await this.exited;
      clearTimeout(timer);
      return code;
    }

    return this.exited;
  }

  #collect(stream: NodeJS.ReadableStream | null, own?: string[]): void {
    let rest = '';

    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');

      rest = parts.pop() ?? '';
      for (const line of parts) this.#line(line, own);
    });
    stream?.on('end', () => {
      if (rest !== '') this.#line(rest, own);
    });
  }

  #line(line: string, own?: string[]): void {
    own?.push(line);
    this.lines.push(line);
    this.#watchers = this.#watchers.filter((w) => {
      if (!w.test(line)) return true;
      w.resolve(line);
      return false;
    });
  }
}

/** The exit code of `program`; fails with its output when it still runs after `timeoutMs`. */
export async function exitOf(program: Program, timeoutMs = 15_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const code = await Promise.race([program.exited, deadline]);

  clearTimeout(timer);
  if (code === 'timeout') {
    throw new Error(`still running after ${timeoutMs} ms:\n${program.output}`);
  }
  return code;
}
