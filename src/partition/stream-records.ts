// Reads a partition stream (log or meta) back as whole records, in stream order, from a position:
// sealed extents only (a load seals the tail first, so every extent but the new empty tail has a
// final length), in bounded chunks, a record possibly spanning two chunks but never two extents
// (one append is stored in one extent).
//
// Invariants: yields each record's bytes exactly once with its (extentId, offset); memory held is
// at most one chunk plus one record; a record length is trusted only after its header CRC
// matched (the codec's recordLength does that).
// Fault model: the stream layer serves only CRC-verified bytes, so bytes that do not frame into
// records (bad header, a record cut by the extent's end, a start position past the extent) mean a
// bug or a lost write: partition.corrupt, with the position, never a guess.
import { readBytesMax } from '../constants.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import type { PartitionStreams, StreamExtent } from './partition-streams.ts';

export interface StreamPosition {
  readonly extentId: number;
  readonly offset: number;
}

export interface ScannedRecord {
  /** A view valid until the generator resumes. */
  readonly bytes: Buffer;
  readonly extentId: number;
  readonly offset: number;
}

export interface StreamRecordsOptions {
  readonly streams: PartitionStreams;
  readonly streamId: number;
  readonly extents: readonly StreamExtent[];
  /** Start here; null = the first extent's start. */
  readonly from: StreamPosition | null;
  /** Total length of the record at bytes[0], null if more bytes are needed; throws if not a record. */
  readonly recordLength: (bytes: Uint8Array) => number | null;
  readonly chunkBytes?: number;
}

export async function* streamRecords(options: StreamRecordsOptions): AsyncGenerator<ScannedRecord> {
  const startIndex = options.from === null ? 0 : options.extents.findIndex((extent) => extent.extentId === options.from?.extentId);
  if (startIndex === -1) {
    throw new StorageError('partition.corrupt', `stream ${options.streamId} no longer holds extent ${options.from?.extentId} where replay starts`, {
      context: { streamId: options.streamId, from: options.from },
    });
  }
  for (const [index, extent] of options.extents.entries()) {
    if (index < startIndex || extent.state.kind === 'open') continue;
    const from = index === startIndex ? options.from?.offset ?? 0 : 0;
    yield* extentRecords(options, extent.extentId, from, extent.state.length);
  }
}

async function* extentRecords(options: StreamRecordsOptions, extentId: number, from: number, length: number): AsyncGenerator<ScannedRecord> {
  if (from > length) throw corrupt(options, extentId, from, `start ${from} is past the sealed length ${length}`);
  const chunkBytes = options.chunkBytes ?? readBytesMax;
  let buffer: Buffer = Buffer.alloc(0);
  let bufferOffset = from;
  let readPosition = from;
  for (;;) {
    const recordBytes = frame(options, extentId, bufferOffset, buffer);
    if (recordBytes !== null && recordBytes <= buffer.length) {
      yield { bytes: buffer.subarray(0, recordBytes), extentId, offset: bufferOffset };
      buffer = buffer.subarray(recordBytes);
      bufferOffset += recordBytes;
      continue;
    }
    if (readPosition >= length) {
      if (buffer.length === 0) return;
      throw corrupt(options, extentId, bufferOffset, `a record of ${recordBytes ?? '?'} bytes is cut by the extent's end`);
    }
    const want = Math.min(chunkBytes, length - readPosition);
    const chunk = await options.streams.read(options.streamId, extentId, readPosition, want);
    readPosition += chunk.length;
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
  }
}

function frame(options: StreamRecordsOptions, extentId: number, offset: number, buffer: Buffer): number | null {
  try {
    return options.recordLength(buffer);
  } catch (error) {
    if (isStorageError(error) && error.code.startsWith('wire.')) throw corrupt(options, extentId, offset, error.message, error);
    throw error;
  }
}

function corrupt(options: StreamRecordsOptions, extentId: number, offset: number, reason: string, cause?: unknown): StorageError {
  return new StorageError('partition.corrupt', `stream ${options.streamId}, extent ${extentId} at ${offset}: ${reason}`, {
    cause,
    context: { streamId: options.streamId, extentId, offset },
  });
}
