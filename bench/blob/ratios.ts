// Ratio columns of the blob benchmark: each peer against the null server (the client's own
// ceiling for the same workload and client), against the machine's limit for the same size
// (fsync'd append for writes, sequential read for reads), and Kura against Azurite on disk.
// Pure functions over saved results, so the report can be recomputed from the JSON alone.
import type { ThroughputResult } from '../lib/stats.ts';
import { limitFor, type MachineLimits } from './limits.ts';
import type { WorkloadResult } from './results.ts';

export const nullServerPeerName = 'null-server';
export const azuriteDiskPeerName = 'azurite-disk';
/** The embedded default a dev cluster is compared with: `kura serve` with 3 disks (3 replicas). */
export const embeddedDefaultPeerName = 'kura-3disk';
/** Dev-cluster peers are named kura-cluster-<n>fe (cluster-peer.ts); 1 front end is the scaling baseline. */
export const clusterPeerPrefix = 'kura-cluster-';
export const clusterOneFrontendPeerName = `${clusterPeerPrefix}1fe`;

export interface RatioSet {
  /** This peer's rate ÷ the null server's for the same workload; null for the null server. */
  readonly toNullServer: number | null;
  /** This peer's rate ÷ the machine limit of the same size, where one applies. */
  readonly toMachineLimit: number | null;
  readonly machineLimit: 'fsync-append' | 'sequential-read' | null;
  /** Kura rows only: Kura's rate ÷ Azurite-on-disk's for the same workload. */
  readonly kuraToAzurite: number | null;
  /** Dev-cluster rows only: the cluster's rate ÷ the embedded default's (kura-3disk). */
  readonly clusterToEmbedded: number | null;
  /** Dev-cluster rows with more than one front end: rate ÷ the 1-front-end cluster's. */
  readonly toOneFrontend: number | null;
}

/** numerator ÷ denominator, or null when either is missing, not finite, or the divisor ≤ 0. */
export function ratio(numerator: number | null, denominator: number | null): number | null {
  if (numerator === null || denominator === null) return null;
  if (!Number.isFinite(numerator) || !Number.isFinite(denominator) || denominator <= 0) return null;
  return numerator / denominator;
}

/** The figure a workload is judged by: MiB/s for large blobs, blobs/s for listings, else ops/s. */
export function primaryRate(result: WorkloadResult): number {
  switch (result.kind) {
    case 'big-upload':
    case 'big-download':
      return result.throughput.mibPerSecond;
    case 'list':
      return result.itemsPerSecond ?? result.throughput.opsPerSecond;
    case 'put':
    case 'get':
    case 'list-populate':
    case 'mixed':
      return result.throughput.opsPerSecond;
  }
}

export function primaryUnit(result: WorkloadResult): 'MiB/s' | 'blobs/s' | 'ops/s' {
  if (result.kind === 'big-upload' || result.kind === 'big-download') return 'MiB/s';
  return result.kind === 'list' ? 'blobs/s' : 'ops/s';
}

/** The machine limit a workload is compared with, in the workload's own unit. */
export function machineLimitRate(result: WorkloadResult, limits: MachineLimits, blockBytes: number): { readonly kind: 'fsync-append' | 'sequential-read'; readonly rate: number } | null {
  const rate = (limit: ThroughputResult | null, unit: 'ops' | 'mib'): number | null => (limit === null ? null : unit === 'ops' ? limit.opsPerSecond : limit.mibPerSecond);
  let found: { kind: 'fsync-append' | 'sequential-read'; rate: number | null } | null = null;
  switch (result.kind) {
    case 'put':
      found = { kind: 'fsync-append', rate: rate(limitFor(limits.fsyncAppend, result.sizeBytes), 'ops') };
      break;
    case 'get':
      found = { kind: 'sequential-read', rate: rate(limitFor(limits.sequentialRead, result.sizeBytes), 'ops') };
      break;
    case 'big-upload':
      found = { kind: 'fsync-append', rate: rate(limitFor(limits.fsyncAppend, blockBytes), 'mib') };
      break;
    case 'big-download':
      found = { kind: 'sequential-read', rate: rate(limitFor(limits.sequentialRead, blockBytes), 'mib') };
      break;
    case 'list':
    case 'list-populate':
    case 'mixed':
      found = null;
      break;
  }
  return found === null || found.rate === null ? null : { kind: found.kind, rate: found.rate };
}

export function computeRatios(result: WorkloadResult, all: readonly WorkloadResult[], limits: MachineLimits, blockBytes: number): RatioSet {
  const same = (peer: string): WorkloadResult | undefined => all.find((other) => other.peer === peer && other.workload === result.workload);
  const nullServer = result.peer === nullServerPeerName ? undefined : same(nullServerPeerName);
  const azurite = result.peer.startsWith('kura') ? same(azuriteDiskPeerName) : undefined;
  const isCluster = result.peer.startsWith(clusterPeerPrefix);
  const embedded = isCluster ? same(embeddedDefaultPeerName) : undefined;
  const oneFrontend = isCluster && result.peer !== clusterOneFrontendPeerName ? same(clusterOneFrontendPeerName) : undefined;
  const limit = machineLimitRate(result, limits, blockBytes);
  const rate = primaryRate(result);
  return {
    toNullServer: nullServer === undefined ? null : ratio(rate, primaryRate(nullServer)),
    toMachineLimit: limit === null ? null : ratio(rate, limit.rate),
    machineLimit: limit?.kind ?? null,
    kuraToAzurite: azurite === undefined ? null : ratio(rate, primaryRate(azurite)),
    clusterToEmbedded: embedded === undefined ? null : ratio(rate, primaryRate(embedded)),
    toOneFrontend: oneFrontend === undefined ? null : ratio(rate, primaryRate(oneFrontend)),
  };
}

/** "0/5000", "37/5000 (2 unreadable)", or "n/a" for peers that keep nothing by design. */
export function lostLabel(result: WorkloadResult): string {
  const durability = result.durability;
  if (durability === null) return '';
  if (durability.kind === 'not-applicable') return 'n/a';
  const lost = `${durability.missing + durability.different}/${durability.acknowledged}`;
  return durability.unreadable > 0 ? `${lost} (${durability.unreadable} unreadable)` : lost;
}
