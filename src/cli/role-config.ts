// Configuration of the role processes (docs/cluster.md, "Configuration"): `--config FILE` (a JSON
// object whose keys are the flags' camelCase names), then flags given on the command line over it,
// then commander's defaults under both; the merged object is validated with one zod schema per
// role. Every problem is reported at once, one line each, naming the field, where its value came
// from (a flag or the file) and what a valid one looks like; the process then exits 1.
//
// Invariants: a key the role does not know is an error (a typo must not silently fall back to a
// default); defaults live in one place (the commander option, which --help shows); a value from
// the file and the same flag on the command line: the flag wins.
// Fault model: the file may be missing, unreadable, not JSON, not an object, or hostile (only
// parsed as JSON and validated; never evaluated).
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import { StorageError, isStorageError } from '../util/errors.ts';

/** A config file larger than this is refused before parsing: role configs are a few hundred bytes. */
const configFileBytesMax = 64 * 1024;

const hostPortPattern = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** "host:port" (IPv6 in brackets), port 0-65535. */
export const hostPort = z.string().refine((text) => {
  const match = hostPortPattern.exec(text);
  return match !== null && Number(match[1]) <= 65_535;
}, 'expected host:port, e.g. 127.0.0.1:7000 (port 0 picks a free port where the role listens)');

function list(item: z.ZodType<string, string>, what: string) {
  return z.union([z.string(), z.array(z.string())], { error: `expected ${what}: a comma-separated string or an array of strings` })
    .transform((value) => (typeof value === 'string' ? value.split(',') : value).map((entry) => entry.trim()).filter((entry) => entry !== ''))
    .pipe(z.array(item).min(1, `expected at least one ${what}`).max(16, `at most 16 ${what}s`));
}

/** etcd client URLs: "http://h:2379,http://h2:2379" or an array. */
export const etcdUrls = list(z.string().regex(/^https?:\/\/[^\s/,]+\/?$/, 'expected an etcd client URL such as http://127.0.0.1:2379'), 'etcd client URL');

/** host:port addresses: "a:1,b:2" or an array. */
export const addressList = list(hostPort, 'host:port address');

/** --copy-source-allow rules (docs/copy-sources.md): "public,10.0.0.0/8" or an array; each is
 * parsed again (and refused with its reason) by parseCopySourcePolicy. */
export const copySourceRules = list(z.string().regex(/^[A-Za-z0-9.:[\]/-]{1,256}$/, 'expected public, none, any, a CIDR or host[:port]'), 'copy source rule');

/** A positive safe integer, from a flag's text or a JSON number. */
export const positiveInteger = z.union([z.number(), z.string().regex(/^\d+$/, 'expected a positive integer').transform(Number)], { error: 'expected a positive integer' })
  .pipe(z.number().int('expected a positive integer').min(1, 'expected a positive integer').max(Number.MAX_SAFE_INTEGER));

/** Stable ids of nodes, servers and controllers. */
export const identifier = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1 to 64 letters, digits, ".", "_" or "-"');

export const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'expected one of fatal, error, warn, info, debug, trace, silent' });

/** Merges --config FILE, the command line and the defaults of `command`, then validates with `schema`. */
export async function loadRoleConfig<S extends z.ZodObject>(command: Command, schema: S): Promise<z.infer<S>> {
  const flags = command.opts();
  const defaults: Record<string, unknown> = {};
  const given: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flags)) {
    if (key === 'config' || value === undefined) continue;
    if (command.getOptionValueSource(key) === 'default') defaults[key] = value;
    else given[key] = value;
  }
  const path = typeof flags['config'] === 'string' ? flags['config'] : null;
  const file = path === null ? {} : await readConfigFile(path);
  const merged: Record<string, unknown> = { ...defaults, ...file, ...given };
  const parsed = schema.strict().safeParse(merged);
  if (parsed.success) return parsed.data as z.infer<S>;
  const origin = (key: string): string => (key in given ? `from ${flagOf(command, key)}` : key in file ? `from ${path ?? 'the config file'}` : 'default');
  const problems = parsed.error.issues.map((issue) => describeIssue(command, issue, merged, origin));
  throw new StorageError('config.invalid', `invalid configuration${path === null ? '' : ` (${path} and flags)`}:\n${problems.map((line) => `  - ${line}`).join('\n')}`);
}

async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > configFileBytesMax) throw new StorageError('config.invalid', `config file ${path} is ${bytes.length} bytes; at most ${configFileBytesMax}`);
    text = bytes.toString('utf8');
  } catch (error) {
    if (isStorageError(error)) throw error;
    throw new StorageError('config.invalid', `cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new StorageError('config.invalid', `config file ${path} is not JSON: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new StorageError('config.invalid', `config file ${path} must hold a JSON object of settings, e.g. {"listen": "127.0.0.1:7000"}`);
  }
  return value as Record<string, unknown>;
}

function flagOf(command: Command, key: string): string {
  const option = command.options.find((candidate) => candidate.attributeName() === key);
  return option?.long ?? `--${key}`;
}

function describeIssue(command: Command, issue: z.core.$ZodIssue, merged: Record<string, unknown>, origin: (key: string) => string): string {
  if (issue.code === 'unrecognized_keys') {
    const known = command.options.map((option) => option.attributeName()).filter((name) => name !== 'config');
    return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => JSON.stringify(key)).join(', ')}; known fields: ${known.join(', ')}`;
  }
  const key = String(issue.path[0] ?? '');
  const field = issue.path.map(String).join('.');
  if (merged[key] === undefined) {
    const flags = command.options.find((candidate) => candidate.attributeName() === key)?.flags ?? `--${key}`;
    return `${field}: missing; give ${flags} or "${key}" in the config file`;
  }
  return `${field} (${origin(key)}): ${issue.message}; got ${JSON.stringify(merged[key])}`;
}

/** Runs a role's action; a StorageError at start (bad configuration, port taken) is one line on
 * stderr and exit 1, at once: what the role opened before it failed (its admin port, etcd clients,
 * timers) would otherwise keep the process alive and never ready (an extent node whose RPC port was
 * taken kept answering /readyz 503 on its admin port, so dev-cluster waited out its ready timeout
 * instead of seeing it exit). stderr is written synchronously (a file or a pipe, on Linux). */
export function roleAction(role: string, run: (command: Command) => Promise<void>): (options: unknown, command: Command) => Promise<void> {
  return async (_options, command) => {
    try {
      await run(command);
    } catch (error) {
      if (!isStorageError(error)) throw error;
      process.stderr.write(`kura ${role}: ${error.message}\n`);
      process.exit(1);
    }
  };
}
