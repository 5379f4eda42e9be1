import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const BENCH = fileURLToPath(new URL('../../bench/run.mjs', import.meta.url));
const PATHS = ['direct', 'two plain hops', 'porthole', 'ssh -R'];

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runBench(args: string[]): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BENCH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';

    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

// The benchmark's figures depend on the machine and are never checked here: only that it still
// runs every path and every measurement, so that it does not rot between full runs.
describe('npm run bench -- --quick', () => {
  it('runs every path and prints its table and verdict', { timeout: 240_000 }, async () => {
    const { code, stdout, stderr } = await runBench(['--quick']);

    expect(code, stderr).toBe(0);

    const lines = stdout.split('\n');
    const header = lines.find((line) => line.startsWith('figure'));

    expect(header, stdout).toBeDefined();
    for (const path of PATHS) expect(header).toContain(path);
    // Without --baseline there is no earlier build to compare with, so no column for one.
    expect(header).not.toMatch(/porthole (before|at commit)/);

    const row = (label: string) => lines.find((line) => line.startsWith(label)) ?? '';
    // The table is aligned: the porthole column runs from its heading to the next one.
    const from = header?.indexOf('porthole') ?? -1;
    const to = header?.indexOf('ssh -R') ?? -1;
    const portholeCell = (label: string) => row(label).slice(from, to).trim();

    // Each figure of the porthole column holds a number: no measurement failed.
    for (const label of [
      'latency p50',
      'tunnel CPU per sequential request',
      'slowest 1% of',
      'download',
      'CPU busy in the download',
      'upload',
      '1000 concurrent, errors',
      'agent start → connected',
      'agent idle RSS',
      'relay memory per idle agent',
      'a request through agent number',
      'one-file agent, size',
      'listen() → mirrored',
    ]) {
      expect(portholeCell(label), `${label}\n${stdout}`).toMatch(/^\d/);
      expect(row(label), stdout).not.toMatch(/NaN|undefined/);
    }
    expect(stdout).toContain('targets (informational):');
    expect(stdout).toMatch(/^bench: \d+ figures$/m);
    expect(stdout).not.toContain('notes:\n  round');
  });

  it('says what is wrong with its options, without a stack trace', async () => {
    const { code, stderr } = await runBench(['--rounds', 'many']);

    expect(code).toBe(2);
    expect(stderr).toContain('--rounds takes 1 to 50');
    expect(stderr).toContain('Usage: npm run bench');
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
