// Epoch fencing of an extent node (docs/stream-protocol.md, "Epoch fencing"): the node obeys the
// stream manager of the highest epoch it has seen and rejects every command of a lower epoch
// with extent.stale_epoch, across restarts.
//
// node.json (at the disk root, written with writeFileDurably: tmp, fsync, rename, fsync dir):
//   { "format": 1, "nodeId": "en-1", "highestEpoch": 7 }
//
// Invariants:
// - highestEpoch only grows; a higher epoch is durable in node.json before any command of that
//   epoch is executed (durable first, then publish).
// - a disk whose node.json names another node is refused (the wrong disk mounted here would
//   otherwise serve another node's replicas under this node's identity).
// Fault model: a crash during a write leaves either the old or the new node.json (rename is
// atomic); a node.json that does not parse is an operating error (config.invalid) that stops the
// node rather than silently resetting its epoch to 0.
import { z } from 'zod';
import type { Disk } from '../io/disk.ts';
import { readFileFully, writeFileDurably } from '../io/durable-file.ts';
import { assert } from '../util/assert.ts';
import { StorageError } from '../util/errors.ts';

export const nodeFileName = 'node.json';
const nodeFileFormat = 1;
/** node.json is tiny; anything larger is not ours. */
const nodeFileBytesMax = 4096;

const nodeFileSchema = z.object({
  format: z.literal(nodeFileFormat),
  nodeId: z.string().min(1),
  highestEpoch: z.number().int().nonnegative(),
});

export class EpochFence {
  private readonly disk: Disk;
  private readonly nodeId: string;
  private highestEpoch: number;
  /** Serialises node.json writes so a lower epoch never overwrites a higher one. */
  private writing: Promise<void> = Promise.resolve();

  private constructor(disk: Disk, nodeId: string, highestEpoch: number) {
    this.disk = disk;
    this.nodeId = nodeId;
    this.highestEpoch = highestEpoch;
  }

  static async load(disk: Disk, nodeId: string): Promise<EpochFence> {
    const stored = await readNodeFile(disk);
    if (stored === null) return new EpochFence(disk, nodeId, 0);
    if (stored.nodeId !== nodeId) {
      throw new StorageError('config.invalid', `disk ${disk.name} belongs to node ${stored.nodeId}, not ${nodeId}`, {
        context: { diskNodeId: stored.nodeId, nodeId },
      });
    }
    return new EpochFence(disk, nodeId, stored.highestEpoch);
  }

  get highest(): number {
    return this.highestEpoch;
  }

  /** Admits a command of `epoch`: rejects a stale one, persists a newer one before returning. */
  async admit(epoch: number, what: string): Promise<void> {
    if (epoch < this.highestEpoch) throw staleEpoch(epoch, this.highestEpoch, what);
    if (epoch === this.highestEpoch) return;
    const write = this.writing.then(() => this.raise(epoch));
    this.writing = write.catch(() => undefined);
    await write;
    if (epoch < this.highestEpoch) throw staleEpoch(epoch, this.highestEpoch, what);
  }

  /** Raises the epoch without a command (registration and heartbeats report the SM's epoch). */
  async observe(epoch: number): Promise<void> {
    if (epoch <= this.highestEpoch) return;
    await this.admit(epoch, 'manager epoch');
  }

  private async raise(epoch: number): Promise<void> {
    if (epoch <= this.highestEpoch) return;
    const text = JSON.stringify({ format: nodeFileFormat, nodeId: this.nodeId, highestEpoch: epoch });
    await writeFileDurably(this.disk, nodeFileName, Buffer.from(text, 'utf8'));
    assert(epoch > this.highestEpoch, 'epoch went backwards while node.json was written');
    this.highestEpoch = epoch;
  }
}

function staleEpoch(epoch: number, highest: number, what: string): StorageError {
  return new StorageError('extent.stale_epoch', `${what} carries epoch ${epoch}, node has seen ${highest}`, {
    context: { epoch, highestEpoch: highest },
  });
}

async function readNodeFile(disk: Disk): Promise<z.infer<typeof nodeFileSchema> | null> {
  const bytes = await readFileFully(disk, nodeFileName, { bytesMax: nodeFileBytesMax });
  return bytes === null ? null : parseNodeFile(bytes.toString('utf8'), disk.name);
}

function parseNodeFile(text: string, diskName: string): z.infer<typeof nodeFileSchema> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new StorageError('config.invalid', `${nodeFileName} on ${diskName} is not JSON`, { cause: error });
  }
  const parsed = nodeFileSchema.safeParse(value);
  if (!parsed.success) throw new StorageError('config.invalid', `${nodeFileName} on ${diskName} is malformed: ${parsed.error.message}`);
  return parsed.data;
}
