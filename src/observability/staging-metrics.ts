// Prometheus gauges of a stamp's O_DIRECT staging pools (docs/metrics.md, "Extent node"): the
// aligned buffers its disks share for large writes and for large reads (src/io/aligned-buffers.ts).
// Each buffer is made on first need and kept for the process's life, so `made` × the buffer size
// is resident memory, and `max` × the size is the stated bound.
//
// Invariants: read from the pools at scrape time (nothing cached here); a pool that is off (null)
// shows no series; observability imports no io code: a pool is seen through StagingPool.
// Fault model: none of its own; a scrape may race an acquire and show either side of it.
import { Gauge, type Registry } from 'prom-client';

/** What the gauges read from a pool (AlignedBuffers satisfies it). */
export interface StagingPool {
  readonly bufferBytes: number;
  readonly buffersMax: number;
  readonly created: number;
}

/** Registers the pools' gauges; `pools` answers the stamp's current pools (null: that one is off). */
export function registerStagingMetrics(registry: Registry, pools: () => { readonly write: StagingPool | null; readonly read: StagingPool | null }): void {
  new Gauge({
    name: 'kura_direct_staging_bytes', registers: [registry], labelNames: ['io', 'state'],
    help: 'Bytes of the O_DIRECT staging pools the disks share, by io (write, read) and state: made (resident, kept for the process\'s life) or max (the pool\'s bound). No series for a pool switched off.',
    collect() {
      this.reset();
      for (const [io, pool] of Object.entries(pools())) {
        if (pool === null) continue;
        this.set({ io, state: 'made' }, pool.created * pool.bufferBytes);
        this.set({ io, state: 'max' }, pool.buffersMax * pool.bufferBytes);
      }
    },
  });
}
