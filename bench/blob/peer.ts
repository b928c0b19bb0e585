// The contract every server the blob benchmark drives must meet: Kura's embedded default, a
// Kura cluster, Azurite (disk and in-memory) and the null server. The runner starts a peer on
// its own loopback port with its own temporary data directory, samples its server process,
// kills it with SIGKILL and restarts it on the same data directory for the durability check,
// and always stops it at the end (also when a workload fails).
import type { ProcessSample } from './proc-sample.ts';

export interface PeerEndpoint {
  /** An Azure Storage connection string for the peer's blob endpoint on 127.0.0.1. */
  readonly connectionString: string;
  /** The server process that is sampled and killed (not a shell or npm wrapper). */
  readonly pid: number;
  /** A dev cluster addressed without its balancer: one connection string per front end, which the
   * timed loops' client uses in turn (cluster-peer.ts); absent: every client uses connectionString. */
  readonly spreadConnectionStrings?: readonly string[];
}

/**
 * What a peer keeps: decides whether the durability check applies (only to 'durable') and
 * whether a read can be compared with what was written (not for 'discards').
 */
export type PeerPersistence =
  | { readonly kind: 'durable' }
  | { readonly kind: 'volatile'; readonly why: string }
  | { readonly kind: 'discards'; readonly why: string }
  /** Already running, not the benchmark's to kill (`kura bench`): no durability check. */
  | { readonly kind: 'running'; readonly why: string };

export interface BenchPeer {
  readonly name: string;
  readonly persistence: PeerPersistence;
  /** Starts the server; rejects with PeerUnavailableError when this build cannot run it. */
  start(): Promise<PeerEndpoint>;
  /** SIGKILL of the server process, resolved once it is gone. */
  kill9(): Promise<void>;
  /** Starts the server again on the same port and data directory. */
  restart(): Promise<PeerEndpoint>;
  /** Stops the server and removes its temporary data directory. Safe to call twice. */
  stop(): Promise<void>;
  /** CPU and memory of the running server process. */
  sample(): ProcessSample;
}

/** The peer cannot run in this build (for example `kura serve` is not built yet). */
export class PeerUnavailableError extends Error {
  override readonly name = 'PeerUnavailableError';
  readonly reason: string;

  constructor(reason: string) {
    super(`peer not available: ${reason}`);
    this.reason = reason;
  }
}

/** Azurite's and Kura's well-known development account (published by Microsoft; not a secret). */
export const devAccountName = 'devstoreaccount1';
export const devAccountKey = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export function devConnectionString(port: number): string {
  return `DefaultEndpointsProtocol=http;AccountName=${devAccountName};AccountKey=${devAccountKey};BlobEndpoint=http://127.0.0.1:${port}/${devAccountName};`;
}
