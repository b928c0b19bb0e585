// `kura serve` crash tests at failpoints (test/integration/serve-failpoints.test.ts,
// serve-recovery-failpoints.test.ts): start it on fresh disks with a failpoint armed once it serves
// (KURA_FAILPOINTS_AFTER_READY), load it with the crash ledger's writers until it dies, restart it
// clean and check the ledger (test/helpers/crash-ledger.ts). Every process is killed by
// cleanupServes (the test files' after hook).
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { FailpointName } from '../../src/util/failpoints.ts';
import { container } from './blob-ledger.ts';
import { checkLedger, writeUntilFailure, type CrashLedger } from './crash-ledger.ts';
import { KuraServe, tempDisks } from './kura-serve.ts';

/** Each case's bound: start, load until the crash, restart, check. */
export const caseTimeoutMs = 60_000;
export const loadTimeoutMs = 20_000;
export const writers = 6;
/** Inline Put Blob (≤ 16 KiB), journaled data append, direct append (≥ 256 KiB), Put Block ×4 + Put Block List. */
export const mixedSizes = [2_000, 40_000, 300_000, 700_000];

export interface CrashCase {
  readonly failpoint: FailpointName;
  /** Hits after ready that pass before it fires (so some writes are acknowledged first). */
  readonly skip: number;
  readonly disks?: number;
  /** What reaches the point: the mixed sizes, or 500 KB inline bodies that fill the memtable. */
  readonly sizes?: readonly number[];
  readonly extraArgs?: readonly string[];
}

export interface Crashed {
  readonly disks: string[];
  readonly ledger: CrashLedger;
  readonly signal: NodeJS.Signals | null;
}

/** `kura serve` with the case's failpoint armed (crash) after ready, loaded until it dies (bounded). */
export async function crashAt(crashCase: CrashCase): Promise<Crashed> {
  const spec = `${crashCase.failpoint}=crash+${crashCase.skip}`;
  const disks = await tempDisks(crashCase.disks ?? 1, 'failpoint');
  const extraArgs = crashCase.extraArgs ?? [];
  const serve = await KuraServe.start({ disks, extraArgs, env: { KURA_FAILPOINTS_AFTER_READY: spec } });
  const box = container(serve, 'ledger');
  await box.create();
  const ledger = await writeUntilFailure(box, { writers, sizes: crashCase.sizes ?? mixedSizes, stopWhen: () => serve.child.exitCode !== null || serve.child.signalCode !== null, timeoutMs: loadTimeoutMs });
  // Bounded: a process that did not die at the point is killed by cleanupServes and fails below.
  if (serve.child.exitCode === null && serve.child.signalCode === null) await serve.exitWithin(5_000).catch(() => null);
  return { disks, ledger, signal: serve.child.signalCode };
}

/** A clean restart on `disks`: ready time, then the ledger check (asserted) and a clean stop. */
export async function restartAndCheck(t: TestContext, label: string, crashed: Crashed, extraArgs: readonly string[] = []): Promise<void> {
  const startedMs = Date.now();
  const serve = await KuraServe.start({ disks: crashed.disks, extraArgs });
  const readyMs = Date.now() - startedMs;
  const check = await checkLedger(container(serve, 'ledger'), crashed.ledger);
  const { acknowledged, inFlight, stops } = crashed.ledger;
  t.diagnostic(`${label}: ${acknowledged.size} acknowledged, ${check.lost.length} lost, ${check.corrupt.length} corrupt; ${inFlight.size} in flight: ${check.whole} whole, ${check.absent} absent, ${check.torn.length} torn; `
    + `listing ${check.listed} = Get ${acknowledged.size + check.whole - check.lost.length} (${check.listingMismatches.length} mismatches); restart ready in ${readyMs} ms (${serve.readyMs} ms inside); writers stopped by ${summarise(stops)}`);
  assert.deepEqual({ lost: check.lost, corrupt: check.corrupt, torn: check.torn, listing: check.listingMismatches }, { lost: [], corrupt: [], torn: [], listing: [] });
  assert.equal(await serve.stop(), 0);
}

/** "6× ECONNRESET" style counts of why the writers stopped. */
export function summarise(stops: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const stop of stops) counts.set(stop, (counts.get(stop) ?? 0) + 1);
  return [...counts].map(([stop, count]) => `${count}× ${stop}`).join(', ');
}
