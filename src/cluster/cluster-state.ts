// The dev cluster's state file, <data>/cluster.json: what `kura dev-cluster` planned (the
// topology, kept across restarts so the same --data is the same stamp) and what runs now (every
// process, its role, addresses, pid and log). `kura status --data DIR` reads it; the same list of
// processes is published in etcd under clusterProcessesKey for `kura status --etcd URLS`.
//
// Why a file written by the supervisor, not lease-bound self-registration: status must list the
// processes that SHOULD run, so a dead one shows as down instead of vanishing with its lease, and
// it must work when etcd itself is down (DESIGN.md P6: the monitor does not depend on the stamp
// it reports on).
//
// Invariants: the file is replaced atomically and durably (writeFileDurably); a file that does not
// parse is refused with a clear error, never half-used; ports of etcd members never change once
// chosen (their peer URLs are stored in etcd's own membership); a kura role's ports stay the same
// while dev-cluster runs (a restarted role comes back where the others expect it).
// Fault model: the supervisor may die at any point: the file then names pids that are gone (status
// says so) or orphans still running (the next dev-cluster on the same data stops them).
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { writeFileDurably } from '../io/durable-file.ts';
import { RealDisk } from '../io/real-disk.ts';
import { StorageError } from '../util/errors.ts';

export const stateFileName = 'cluster.json';
/** etcd key holding the stamp's process list (JSON of ClusterProcesses). */
export const clusterProcessesKey = 'cluster/processes';

export const roleKinds = ['etcd', 'controller', 'extent-node', 'partition-server', 'frontend', 'balancer'] as const;
export type RoleKind = (typeof roleKinds)[number];

const port = z.number().int().min(1).max(65_535);

/** How many of each role a dev cluster may have: at least 3 extent nodes (three replicas in three
 * fault domains); at most what one machine can hold and the state file stays small. */
export const topologyLimits = {
  extentNodes: { min: 3, max: 64, flag: '--extent-nodes' },
  partitionServers: { min: 1, max: 16, flag: '--partition-servers' },
  frontends: { min: 1, max: 16, flag: '--frontends' },
  controllers: { min: 1, max: 8, flag: '--controllers' },
} as const;
const count = (limits: { readonly min: number; readonly max: number }): z.ZodNumber => z.number().int().min(limits.min).max(limits.max);
const name = z.string().regex(/^[a-z0-9-]{1,32}$/);

const topologySchema = z.object({
  /** Unique per stamp: etcd's --initial-cluster-token, so two dev clusters never join. */
  clusterToken: z.string().regex(/^[a-z0-9-]{1,64}$/),
  etcdMembers: z.array(z.object({ name, clientPort: port, peerPort: port })).min(1).max(3),
  extentNodes: count(topologyLimits.extentNodes),
  partitionServers: count(topologyLimits.partitionServers),
  frontends: count(topologyLimits.frontends),
  controllers: count(topologyLimits.controllers),
  /** The fixed ports of each kura role (by process name): a restarted role comes back on the same
   * address, which the others were given (controllers) or hold (the balancer, registrations).
   * Absent in files written before ports were fixed: chosen at the next start. */
  rolePorts: z.record(name, z.object({ listen: port, admin: port })).optional(),
});
export type Topology = z.infer<typeof topologySchema>;

const processSchema = z.object({
  name,
  role: z.enum(roleKinds),
  /** Where it serves (client URL for etcd); null before it started. */
  address: z.string().max(300).nullable(),
  /** Its admin HTTP address (/readyz, /metrics), if it has one. */
  admin: z.string().max(300).nullable(),
  pid: z.number().int().nonnegative().nullable(),
  log: z.string().max(4096),
  faultDomain: z.string().max(64).nullable(),
  /** How many times dev-cluster restarted it after it died (absent: never). */
  restarts: z.number().int().nonnegative().optional(),
});
export type ProcessRecord = z.infer<typeof processSchema>;

const processesSchema = z.object({
  /** The client endpoint (the balancer), host:port. */
  endpoint: z.string().max(300),
  processes: z.array(processSchema).max(256),
});
export type ClusterProcesses = z.infer<typeof processesSchema>;

const stateSchema = z.object({
  version: z.literal(1),
  topology: topologySchema,
  /** dev-cluster's own pid while it runs, null once it stopped cleanly. */
  supervisorPid: z.number().int().positive().nullable(),
  phase: z.enum(['starting', 'ready', 'stopping', 'stopped']),
  updatedAt: z.string().max(64),
  connectionString: z.string().max(1000).nullable(),
}).extend(processesSchema.shape);
export type ClusterState = z.infer<typeof stateSchema>;

export async function readClusterState(directory: string): Promise<ClusterState | null> {
  let text: string;
  try {
    text = await readFile(`${directory}/${stateFileName}`, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  return parseJson(stateSchema, text, `${directory}/${stateFileName}`);
}

export async function writeClusterState(directory: string, state: ClusterState): Promise<void> {
  const checked = stateSchema.parse(state);
  await writeFileDurably(new RealDisk({ root: directory }), stateFileName, Buffer.from(`${JSON.stringify(checked, null, 2)}\n`));
}

export function parseClusterProcesses(text: string, source: string): ClusterProcesses {
  return parseJson(processesSchema, text, source);
}

function parseJson<T>(schema: z.ZodType<T>, text: string, source: string): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new StorageError('config.invalid', `${source} is not JSON; is this a dev-cluster data directory?`, { cause: error });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new StorageError('config.invalid', `${source} is malformed: ${parsed.error.message}`);
  return parsed.data;
}
