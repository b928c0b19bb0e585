// Blob-table row formats (docs/blob-schema.md): the frozen fixtures of schema v1 (committed block
// lists with refs inside a bytes column or a data-stream document) and v2 (index + positional
// refs in dataRefs columns, inline and paged) still decode to the same blocks; partition data GC
// (the blob tables' RowDataReferences) lists every content ref of a v2 row and refuses (opaque)
// a v1 row; a GC-style in-place rewrite of v2 refs keeps the list decodable; an inline-body row
// (v2, column body) reads its bytes from the row, names no ref, and its spilled form reads the same.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { blobDataReferences, blobInlineData } from '../../../../src/frontend/blob-service/blob-table-schema.ts';
import { blobContent, readContent } from '../../../../src/frontend/blob-service/content.ts';
import type { BlobServiceContext } from '../../../../src/frontend/blob-service/context.ts';
import { SystemClock } from '../../../../src/util/clock.ts';
import type { BlobTables } from '../../../../src/frontend/blob-service/blob-tables.ts';
import { encodeBlockIndex, encodeBlockListV1, loadBlockList } from '../../../../src/frontend/blob-service/block-list.ts';
import { decodeBlob } from '../../../../src/frontend/blob-service/records.ts';
import type { LiveRow } from '../../../../src/partition/partition-scan.ts';
import { decodeRow } from '../../../../src/wire/partition-row.ts';
import type { Column, DataRef } from '../../../../src/wire/partition-row.ts';
import { buildRows, fixtureBlocks, inlineBody, inlineRows, v1DocumentRef, v1Rows, v2IndexDocRef, v2Rows } from '../../../fixtures/blob/generate.ts';

function readRows(name: string): LiveRow[] {
  const bytes = readFileSync(new URL(`../../../fixtures/blob/${name}`, import.meta.url));
  const rows: LiveRow[] = [];
  for (let at = 0; at < bytes.length;) {
    const length = bytes.readUInt32BE(at);
    const row = decodeRow(bytes.subarray(at + 4, at + 4 + length));
    assert.equal(row.kind, 'live');
    if (row.kind === 'live') rows.push(row);
    at += 4 + length;
  }
  return rows;
}

/** BlobTables over fixture rows and a pretend data stream (only what loadBlockList calls). */
function fixtureTables(rows: readonly LiveRow[], documents: ReadonlyMap<string, Buffer>): BlobTables {
  const refKey = (ref: DataRef): string => `${ref.extentId}:${ref.offset}:${ref.length}`;
  return {
    get: (key) => Promise.resolve(rows.find((row) => row.key.equals(key)) ?? null),
    getMany: (keys) => Promise.resolve(keys.map((key) => rows.find((row) => row.key.equals(key)) ?? null)),
    scan: (options) => Promise.resolve({
      items: rows.filter((row) => options.prefix !== undefined && row.key.subarray(0, options.prefix.length).equals(options.prefix)).map((row) => ({ kind: 'row' as const, row })),
      continuation: null,
    }),
    readData: (_key, ref) => {
      const bytes = documents.get(refKey(ref));
      return bytes === undefined ? Promise.reject(new Error(`no data at ${refKey(ref)}`)) : Promise.resolve(bytes);
    },
    transact: () => Promise.reject(new Error('read only')),
    appendData: () => Promise.reject(new Error('read only')),
  };
}

const blobKey = (row: LiveRow): Buffer => row.key.subarray(0, row.key.indexOf('dir/blob.txt') + 'dir/blob.txt'.length);

test('blob rows v1 (frozen fixture) still decode; their refs are opaque to data GC', async () => {
  const rows = readRows('rows-v1.bin');
  assert.deepEqual(readFileSync(new URL('../../../fixtures/blob/rows-v1.bin', import.meta.url)), buildRows(v1Rows()), 'the v1 writer is unchanged');
  const tables = fixtureTables(rows, new Map([[`${v1DocumentRef.extentId}:${v1DocumentRef.offset}:${v1DocumentRef.length}`, encodeBlockListV1(fixtureBlocks)]]));
  for (const row of rows) {
    const record = decodeBlob(row);
    assert.deepEqual(await loadBlockList(tables, blobKey(row), record.blockList), fixtureBlocks);
    assert.equal(blobDataReferences.opaque?.(row.columns), true, 'a v1 list hides refs: GC must not run over it');
  }
});

test('blob rows v2 (frozen fixture) decode; every content ref and the index document are visible to data GC; in-place ref moves keep the list', async () => {
  const rows = readRows('rows-v2.bin');
  assert.deepEqual(readFileSync(new URL('../../../fixtures/blob/rows-v2.bin', import.meta.url)), buildRows(v2Rows()), 'the v2 writer is unchanged');
  const documents = new Map([[`${v2IndexDocRef.extentId}:${v2IndexDocRef.offset}:${v2IndexDocRef.length}`, encodeBlockIndex(fixtureBlocks)]]);
  const tables = fixtureTables(rows, documents);
  const contentRefs = fixtureBlocks.flatMap((block) => block.refs);
  const [inline, paged, page] = rows;
  assert.ok(inline !== undefined && paged !== undefined && page !== undefined);
  for (const row of [inline, paged]) assert.deepEqual(await loadBlockList(tables, blobKey(row), decodeBlob(row).blockList), fixtureBlocks);
  for (const row of rows) assert.equal(blobDataReferences.opaque?.(row.columns), false);
  assert.deepEqual(blobDataReferences.refs(inline.columns), contentRefs, 'inline: blockRefs');
  assert.deepEqual(blobDataReferences.refs(paged.columns), [v2IndexDocRef], 'paged: the index document');
  assert.deepEqual(blobDataReferences.refs(page.columns), contentRefs, 'paged: the page row');
  // A copy-forward moves every ref to another extent, same length, in place.
  const moved = (ref: DataRef): DataRef => ({ extentId: ref.extentId + 100, offset: ref.offset + 1, length: ref.length });
  const rewritten = { ...inline, columns: blobDataReferences.rewrite(inline.columns, moved) };
  const blocks = await loadBlockList(tables, blobKey(inline), decodeBlob(rewritten).blockList);
  assert.deepEqual(blocks.map((block) => block.refs), fixtureBlocks.map((block) => block.refs.map(moved)));
  assert.deepEqual(blocks.map((block) => [block.id, block.size]), fixtureBlocks.map((block) => [block.id, block.size]));
});

async function readAll(ctx: BlobServiceContext, row: LiveRow): Promise<Buffer> {
  const loaded = { key: row.key, row, record: decodeBlob(row), blobKey: blobKey(row), etag: row.etag, modifiedMs: row.lastModifiedMs };
  const content = await blobContent(ctx, loaded);
  const chunks: Uint8Array[] = [];
  for await (const chunk of readContent(ctx.tables, blobKey(row), content, { start: 0, end: loaded.record.size - 1 })) chunks.push(chunk);
  return Buffer.concat(chunks);
}

test('blob rows with an inline body (frozen fixture) read from the row; no ref for GC; the spilled form (a checkpoint\'s) reads the same bytes', async () => {
  const rows = readRows('rows-inline-v2.bin');
  assert.deepEqual(readFileSync(new URL('../../../fixtures/blob/rows-inline-v2.bin', import.meta.url)), buildRows(inlineRows()), 'the inline writer is unchanged');
  const spillRef: DataRef = { extentId: 21, offset: 4096, length: inlineBody.length };
  const tables = fixtureTables(rows, new Map([[`${spillRef.extentId}:${spillRef.offset}:${spillRef.length}`, inlineBody]]));
  const ctx: BlobServiceContext = { tables, clock: new SystemClock(), stats: { raceRetries: 0, raceExhausted: 0 } };
  for (const row of rows) {
    const record = decodeBlob(row);
    assert.equal(record.blockList?.kind, 'body');
    assert.equal(record.size, inlineBody.length);
    assert.deepEqual(await readAll(ctx, row), inlineBody);
    assert.deepEqual(await loadBlockList(tables, blobKey(row), record.blockList), [], 'no committed block to list');
    assert.deepEqual(blobDataReferences.refs(row.columns), [], 'an inline body is not a ref');
    const inlineOf = (columns: readonly Column[]): unknown => columns.find((column) => column.name === blobInlineData.column)?.value;
    assert.deepEqual(inlineOf(row.columns), { kind: 'bytes', value: inlineBody });
    const others = row.columns.filter((column) => column.name !== blobInlineData.column);
    const spilled: LiveRow = { ...row, columns: [...others, ...blobInlineData.spilledColumns(spillRef)] };
    assert.equal(inlineOf(spilled.columns), undefined, 'spilled: nothing inline');
    assert.deepEqual(blobDataReferences.refs(spilled.columns), [spillRef], 'spilled: GC sees the ref');
    assert.equal(decodeBlob(spilled).blockList?.kind, 'inline');
    assert.equal(decodeBlob(spilled).size, inlineBody.length);
    assert.deepEqual(await readAll(ctx, spilled), inlineBody);
  }
});
