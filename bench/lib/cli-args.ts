// The benchmarks' command lines: `--help` prints the usage and exits 0; an unknown or malformed
// option prints what was wrong and the usage, and exits 2, instead of a stack trace.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseBenchArgs<const T extends Options>(usage: string, options: T): ReturnType<typeof parseArgs<{ options: T }>>['values'] {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    console.log(usage);
    process.exit(0);
  }
  try {
    return parseArgs({ options }).values;
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${usage}`);
    process.exit(2);
  }
}

/** A bench script's usage is its leading `//` comment (what it does and how it is run), so the
 * `--help` text and the file's own description are one text. */
export function headerUsage(moduleUrl: string): string {
  const lines = readFileSync(fileURLToPath(moduleUrl), 'utf8').split('\n');
  const header: string[] = [];
  for (const line of lines) {
    if (!line.startsWith('//')) break;
    header.push(line.replace(/^\/\/ ?/, ''));
  }
  return header.join('\n');
}

/** A positive integer option's value (`fallback` when absent); throws naming `--name` otherwise. */
export function positiveIntegerOption(value: string | undefined, fallback: number, name: string): number {
  const parsed = value === undefined ? fallback : Number(value);
  if (!Number.isSafeInteger(parsed) || parsed <= 0) throw new Error(`--${name} must be a positive integer`);
  return parsed;
}
