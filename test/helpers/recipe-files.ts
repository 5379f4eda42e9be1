import { existsSync, readFileSync } from 'node:fs';

import { until } from './until.js';

/** One Dockerfile instruction: its keyword in upper case and the rest of its line. */
export interface Instruction {
  keyword: string;
  args: string;
}

/** The instructions of a Dockerfile, with continuation lines joined and comments left out. */
export function dockerInstructions(text: string): Instruction[] {
  const joined = text.replace(/\\\r?\n/g, ' ');

  return joined.split(/\r?\n/).flatMap((line) => {
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);

    if (line.trim().startsWith('#') || match === null) return [];

    return [{ keyword: (match[1] ?? '').toUpperCase(), args: (match[2] ?? '').trim() }];
  });
}

/** The arguments of each instruction with `keyword`, split on blanks. */
export function instructionArgs(instructions: Instruction[], keyword: string): string[][] {
  return instructions.filter((i) => i.keyword === keyword).map((i) => i.args.split(/\s+/));
}

/** The values of `key` in `[section]` of a systemd unit file (a key may repeat). */
export function unitValues(text: string, section: string, key: string): string[] {
  let current = '';
  const values: string[] = [];

  for (const line of text.split(/\r?\n/)) {
    const header = /^\[(.+)\]$/.exec(line.trim());

    if (header !== null) current = header[1] ?? '';
    else if (current === section && line.startsWith(`${key}=`)) {
      values.push(line.slice(key.length + 1));
    }
  }

  return values;
}

/** Polls `file` until its text matches `pattern`; fails with what it holds after a deadline. */
export function waitForFileText(
  file: string,
  pattern: RegExp,
  timeoutMs = 15_000,
): Promise<string> {
  const read = (absent: string) => (existsSync(file) ? readFileSync(file, 'utf8') : absent);

  return until(
    () => {
      const text = read('');

      return pattern.test(text) && text;
    },
    () => `${file} to show ${String(pattern)}; it holds:\n${read('(no file)')}`,
    { timeoutMs, everyMs: 50 },
  );
}
