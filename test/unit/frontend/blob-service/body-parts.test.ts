// A streamed body's appends go down as the chunks they arrived in (util/body-parts.ts): the
// front end passes parts, never joins a piece unless the MD5 worker hashes it (a body of
// md5WorkerBodyBytesMin or more), and the extent store writes header + parts with one writev
// (journal record and extent block alike) and checks the CRC over exactly those bytes. On a real
// in-process stamp (BlobStamp) and on SimDisk with a power cut and a flipped bit.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { dataAppendBytesMax, md5WorkerBodyBytesMin } from '../../../../src/constants.ts';
import type { BlobTables } from '../../../../src/frontend/blob-service/blob-tables.ts';
import { bodyOf, readRefs, writeBlock, writeBody } from '../../../../src/frontend/blob-service/data.ts';
import { SimDisk } from '../../../../src/io/sim-disk.ts';
import { ExtentStore } from '../../../../src/stream/extent-store.ts';
import { journalDirectory, scanJournalFile } from '../../../../src/stream/journal.ts';
import { BodyParts, BodyPartsCollector, bodyBytes, bodyCrc32c, bodyOfParts, type Body } from '../../../../src/util/body-parts.ts';
import { SystemClock } from '../../../../src/util/clock.ts';
import { crc32c } from '../../../../src/util/crc32c.ts';
import { isStorageError } from '../../../../src/util/errors.ts';
import { SeededRandom } from '../../../../src/util/random.ts';
import { blockHeaderBytes, extentFileName, extentHeaderBytes } from '../../../../src/wire/extent-format.ts';
import { BlobStamp } from './blob-stamp.ts';

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

function chunked(whole: Buffer, chunkBytes: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < whole.length; offset += chunkBytes) chunks.push(whole.subarray(offset, offset + chunkBytes));
  return chunks;
}

describe('BodyParts', () => {
  it('is the concatenation of its parts: length, join and CRC alike', () => {
    const parts = [randomBytes(5), randomBytes(70_000), randomBytes(1)];
    const body = new BodyParts(parts);
    const whole = Buffer.concat(parts);
    assert.equal(body.length, whole.length);
    assert.ok(bodyBytes(body).equals(whole));
    assert.equal(bodyCrc32c(body), crc32c(whole));
    const one = randomBytes(9);
    assert.equal(bodyOfParts([one]), one, 'one part is that buffer, not a copy');
    assert.throws(() => new BodyParts([one]), /one part/);
  });
});

describe('BodyPartsCollector', () => {
  it('hands out exactly the bytes pushed, in order, whatever the chunk and piece sizes; copies only small chunks past the first parts', (t) => {
    const random = new SeededRandom(11);
    let pieces = 0;
    let partsMax = 0;
    for (let round = 0; round < 40; round++) {
      const collector = new BodyPartsCollector({ chunkBytesMin: 16, stagingBytes: 64, partsUncopied: 4 });
      const input: Buffer[] = [];
      const output: Buffer[] = [];
      for (let step = 0; step < 200; step++) {
        const chunk = random.bytes(1 + random.int(round % 2 === 0 ? 8 : 100));
        input.push(chunk);
        collector.push(chunk);
        if (random.int(10) === 0 && collector.length > 0) {
          const body = collector.take(1 + random.int(collector.length));
          partsMax = Math.max(partsMax, body instanceof BodyParts ? body.parts.length : 1);
          output.push(bodyBytes(body));
          pieces += 1;
        }
      }
      if (collector.length > 0) output.push(bodyBytes(collector.take(collector.length)));
      assert.ok(Buffer.concat(output).equals(Buffer.concat(input)), `round ${round}`);
    }
    // A few small chunks of a small body are parts of their own: not copied.
    const few = new BodyPartsCollector({ chunkBytesMin: 16_384, stagingBytes: 65_536, partsUncopied: 64 });
    const chunks = [randomBytes(10), randomBytes(20)];
    for (const chunk of chunks) few.push(chunk);
    const body = few.take(30);
    assert.ok(body instanceof BodyParts && body.parts[0] === chunks[0] && body.parts[1] === chunks[1]);
    t.diagnostic(`${pieces} pieces checked; at most ${partsMax} parts in one`);
  });
});

describe('streamed bodies on a stamp', () => {
  let stamp: BlobStamp;
  before(async () => { stamp = await BlobStamp.start(); });
  after(async () => { await stamp.stop(); });

  /** The stamp's real tables, with what each appendData received recorded. */
  function recording(seen: Body[]): BlobTables {
    return Object.assign(Object.create(stamp.tables) as BlobTables, {
      appendData: (routeKey: Buffer, bytes: Body) => { seen.push(bytes); return stamp.tables.appendData(routeKey, bytes); },
    });
  }

  it('a Put Block body in 64 KiB chunks is appended as parts and reads back byte-exact', async (t) => {
    const whole = randomBytes(dataAppendBytesMax + 100_003);
    const seen: Body[] = [];
    const key = Buffer.from('body-parts-block');
    const written = await writeBlock(recording(seen), key, bodyOf(chunked(whole, 65_536)), { computeMd5: false });
    assert.equal(written.size, whole.length);
    assert.deepEqual(seen.map((body) => body.length), [dataAppendBytesMax, 100_003]);
    assert.ok(seen.every((body) => body instanceof BodyParts), 'no append was joined');
    assert.ok((await collect(readRefs(stamp.tables, key, written.refs, { start: 0, end: whole.length - 1 }))).equals(whole));
    t.diagnostic(`parts per append: ${seen.map((body) => (body instanceof BodyParts ? body.parts.length : 1)).join(', ')}`);
  });

  it('a Put Blob body below md5WorkerBodyBytesMin is hashed and appended as its parts; one on the MD5 worker is joined', async (t) => {
    for (const [name, bytes, joined] of [['64 KiB in 2 chunks', 65_536, false], ['300,000 B', 300_000, false], ['1 MiB + 1 on the worker', md5WorkerBodyBytesMin + 1, true]] as const) {
      const whole = randomBytes(bytes);
      const seen: Body[] = [];
      const key = Buffer.from(`body-parts-blob-${bytes}`);
      // The first chunk as node:http's first read of a 64 KiB request gives it (the head took the rest).
      const written = await writeBody(recording(seen), key, bodyOf([whole.subarray(0, 64_800), ...chunked(whole.subarray(64_800), 65_536)]));
      assert.ok(written.md5.equals(createHash('md5').update(whole).digest()), `${name}: the MD5 of the whole body`);
      assert.ok(seen.every((body) => (body instanceof BodyParts) !== joined), `${name}: ${joined ? 'one buffer' : 'parts'} per append`);
      assert.ok((await collect(readRefs(stamp.tables, key, written.refs, { start: 0, end: whole.length - 1 }))).equals(whole));
      t.diagnostic(`${name}: appends of ${seen.map((body) => (body instanceof BodyParts ? `${body.parts.length} parts` : '1 buffer')).join(', ')}`);
    }
    // 50,000 one-byte chunks: coalesced into staging buffers (linear), not 50,000 parts.
    const tiny = randomBytes(50_000);
    const tinySeen: Body[] = [];
    const tinyWritten = await writeBlock(recording(tinySeen), Buffer.from('body-parts-tiny'), bodyOf(chunked(tiny, 1)), { computeMd5: false });
    assert.ok(tinySeen.every((body) => !(body instanceof BodyParts) || body.parts.length <= 576), 'parts stay within the bound');
    assert.ok((await collect(readRefs(stamp.tables, Buffer.from('body-parts-tiny'), tinyWritten.refs, { start: 0, end: tiny.length - 1 }))).equals(tiny));
  });
});

describe('a streamed body is read while its previous piece is appended', () => {
  let stamp: BlobStamp;
  before(async () => { stamp = await BlobStamp.start(); });
  after(async () => { await stamp.stop(); });

  /** The stamp's real tables; each appendData waits until the test opens its gate. */
  function gated(): { tables: BlobTables; gates: (() => void)[]; issued: () => number } {
    const gates: (() => void)[] = [];
    const tables = Object.assign(Object.create(stamp.tables) as BlobTables, {
      appendData: async (routeKey: Buffer, bytes: Body) => {
        await new Promise<void>((open) => gates.push(open));
        return stamp.tables.appendData(routeKey, bytes);
      },
    });
    return { tables, gates, issued: () => gates.length };
  }

  /** `whole` in 64 KiB chunks, counting the bytes the reader has pulled; `failAt` throws there. */
  function counted(whole: Buffer, failAt?: number): { body: AsyncIterable<Uint8Array> & { length: number }; pulled: () => number } {
    let pulled = 0;
    const body = {
      length: whole.length,
      async *[Symbol.asyncIterator]() {
        for (const chunk of chunked(whole, 65_536)) {
          if (failAt !== undefined && pulled >= failAt) throw new Error('client went away');
          pulled += chunk.length;
          yield await Promise.resolve(chunk);
        }
      },
    };
    return { body, pulled: () => pulled };
  }

  async function until(condition: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (!condition()) {
      if (Date.now() > deadline) assert.fail(`not within 20 s: ${what}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  it('one append in flight at a time, the next piece read meanwhile (bounded), refs in body order, byte-exact', async (t) => {
    const whole = randomBytes(3 * dataAppendBytesMax + 70_000);
    const { tables, gates, issued } = gated();
    const { body, pulled } = counted(whole);
    const key = Buffer.from('read-while-append');
    const written = writeBlock(tables, key, body, { computeMd5: false });
    await until(() => issued() === 1, 'the first piece is appended');
    // The first append is not durable yet, and the body is still read: the second piece fills.
    await until(() => pulled() >= 2 * dataAppendBytesMax, 'the second piece is read while the first is appended');
    for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(issued(), 1, 'a second append waits for the first');
    assert.ok(pulled() <= 2 * dataAppendBytesMax + 65_536, `at most two pieces and a chunk held (pulled ${pulled()})`);
    const holdBytes = pulled();
    for (let next = 1; next <= 4; next++) {
      gates[next - 1]?.();
      if (next < 4) await until(() => issued() === next + 1, `append ${next + 1} is issued after append ${next}`);
    }
    const result = await written;
    assert.deepEqual(result.refs.map((ref) => ref.length), [dataAppendBytesMax, dataAppendBytesMax, dataAppendBytesMax, 70_000], 'refs in body order');
    assert.equal(result.size, whole.length);
    assert.ok((await collect(readRefs(stamp.tables, key, result.refs, { start: 0, end: whole.length - 1 }))).equals(whole));
    t.diagnostic(`read ${holdBytes} bytes of the body before its first append was durable`);
  });

  it('a body that fails while a piece is appended waits for that append, then rejects', async () => {
    const whole = randomBytes(2 * dataAppendBytesMax);
    const { tables, gates, issued } = gated();
    const { body } = counted(whole, dataAppendBytesMax + 65_536 * 3);
    let settled = false;
    const written = writeBlock(tables, Buffer.from('fail-while-append'), body, { computeMd5: false }).finally(() => { settled = true; });
    written.catch(() => {});
    await until(() => issued() === 1, 'the first piece is appended');
    for (let turn = 0; turn < 50; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, 'the failed body waits for its append in flight');
    gates[0]?.();
    await assert.rejects(written, /client went away/);
  });

  it('an append that fails while the next piece is read fails the body', async () => {
    const whole = randomBytes(2 * dataAppendBytesMax + 10);
    const tables = Object.assign(Object.create(stamp.tables) as BlobTables, {
      appendData: async () => { await new Promise((resolve) => setTimeout(resolve, 1)); throw new Error('append refused'); },
    });
    await assert.rejects(writeBlock(tables, Buffer.from('append-fails'), counted(whole).body, { computeMd5: false }), /append refused/);
  });
});

describe('ExtentStore appends in parts (SimDisk)', () => {
  const identity = { streamId: 3, extentId: 17, epoch: 2 };
  const clock = new SystemClock();
  for (const groupCommit of [true, false]) {
    it(`writes direct and journaled part bodies exactly, survives a power cut, never serves a flipped bit (group commit ${groupCommit ? 'on' : 'off'})`, async (t) => {
      const disk = new SimDisk({ random: new SeededRandom(7) });
      const open = (): Promise<ExtentStore> => ExtentStore.open({ disk, clock, groupCommit, directAppendBytesMin: 1024 });
      const store = await open();
      await store.create(identity);
      // 4,000 bytes in 3 parts take the direct path (>= 1,024); 600 bytes in 2 parts the journal's.
      const bodies = [[randomBytes(1000), randomBytes(2999), randomBytes(1)], [randomBytes(100), randomBytes(500)]].map((parts) => new BodyParts(parts));
      let offset = 0;
      for (const body of bodies) {
        await store.append(identity.extentId, offset, body);
        offset += body.length;
      }
      const expected = Buffer.concat(bodies.map((body) => bodyBytes(body)));
      assert.ok((await store.read(identity.extentId, 0, offset)).equals(expected));
      if (groupCommit) {
        // The journaled body was written from its parts: its record checks and holds the joined bytes.
        const records = [];
        for (const name of await disk.list(journalDirectory)) for (const item of (await scanJournalFile(disk, `${journalDirectory}/${name}`)).items) records.push(item);
        const record = records.find((item) => item.kind === 'record' && item.record.kind === 'append' && item.record.offset === 4000);
        assert.ok(record?.kind === 'record' && record.record.kind === 'append' && record.record.body.equals(expected.subarray(4000)), 'the journal record of a part body is whole and checks');
        assert.ok(records.every((item) => item.kind === 'record'), 'no bad journal record');
      }
      disk.crash({ tornWrites: true });
      const reopened = await open();
      assert.ok((await reopened.read(identity.extentId, 0, offset)).equals(expected), 'acknowledged part bodies survive a power cut');
      await reopened.close();
      // A flipped bit in the first (parts-written) block's body is caught by its CRC.
      disk.flipBit(`extents/${extentFileName(identity)}`, extentHeaderBytes + blockHeaderBytes + 2500, 5);
      const flipped = await open();
      await assert.rejects(flipped.read(identity.extentId, 0, 10), (error: unknown) => isStorageError(error, 'extent.corrupt'));
      assert.ok((await flipped.read(identity.extentId, 4000, 600)).equals(expected.subarray(4000)));
      await flipped.close();
      t.diagnostic(`${bodies.length} part bodies (${offset} bytes) read back after a power cut; a flipped bit caught`);
    });
  }
});
