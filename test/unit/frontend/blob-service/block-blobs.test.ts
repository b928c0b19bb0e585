// Block blobs through the real front end and the official SDK on a real in-process stamp:
// Put Blob, Get Blob (ranges, MD5), Put Block / Put Block List / Get Block List, conditions,
// create-only, metadata, properties, tags, tier, copy, delete — success and error paths.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { AnonymousCredential, ContainerClient, ContainerSASPermissions, StorageSharedKeyCredential, generateBlobSASQueryParameters } from '@azure/storage-blob';
import { dataAppendBytesMax } from '../../../../src/constants.ts';
import { accountKeyBase64 } from '../helpers.ts';
import { bodyOf, writeBody } from '../../../../src/frontend/blob-service/data.ts';
import { crc64 } from '../../../../src/util/crc64.ts';
import { BlobStamp, expectError } from './blob-stamp.ts';

let stamp: BlobStamp;
before(async () => { stamp = await BlobStamp.start(); });
after(async () => { await stamp.stop(); });

function blockId(n: number): string {
  return Buffer.from(`block-${String(n).padStart(6, '0')}`).toString('base64');
}

test('Put Blob / Get Blob: bytes, MD5, ranges, overwrite, conditions, create-only', async (t) => {
  const container = stamp.client.getContainerClient('blocks');
  await container.create();
  const blob = container.getBlockBlobClient('dir/a.bin');
  const data = randomBytes(dataAppendBytesMax + 1024 * 1024 + 123);
  const put = await blob.upload(data, data.length, { blobHTTPHeaders: { blobContentType: 'application/x-test' }, metadata: { Owner: 'kura' } });
  assert.deepEqual(Buffer.from(put.contentMD5 ?? []), createHash('md5').update(data).digest());
  const whole = await blob.downloadToBuffer();
  assert.ok(whole.equals(data), 'a 9 MiB body split over two data appends reads back byte-exact');
  const range = await blob.download(dataAppendBytesMax - 10, 20);
  assert.equal(range.contentLength, 20);
  const rangeBytes = await streamBytes(range.readableStreamBody);
  assert.ok(rangeBytes.equals(data.subarray(dataAppendBytesMax - 10, dataAppendBytesMax + 10)), 'a range across two refs');
  const props = await blob.getProperties();
  assert.equal(props.contentLength, data.length);
  assert.equal(props.contentType, 'application/x-test');
  assert.deepEqual(props.metadata, { owner: 'kura' });
  assert.equal(props.blobType, 'BlockBlob');
  assert.equal(props.etag, put.etag);
  await expectError(() => blob.download(data.length + 5, 10), 416, 'InvalidRange');
  await expectError(() => blob.upload('x', 1, { conditions: { ifMatch: '"0xDEAD"' } }), 412, 'ConditionNotMet');
  await expectError(() => blob.upload('x', 1, { conditions: { ifNoneMatch: '*' } }), 409, 'BlobAlreadyExists');
  await expectError(() => blob.getProperties({ conditions: { ifNoneMatch: put.etag ?? '' } }), 304, undefined);
  const second = await blob.upload('small', 5, { conditions: { ifMatch: put.etag ?? '' } });
  assert.notEqual(second.etag, put.etag);
  assert.equal((await blob.downloadToBuffer()).toString(), 'small');
  await expectError(() => container.getBlockBlobClient('missing').download(), 404, 'BlobNotFound');
  await expectError(() => stamp.client.getContainerClient('nocontainer').getBlockBlobClient('x').upload('x', 1), 404, 'ContainerNotFound');
  const empty = container.getBlockBlobClient('empty');
  await empty.upload('', 0);
  assert.equal((await empty.downloadToBuffer()).length, 0);
  t.diagnostic(`Put Blob ${data.length} bytes in ${Math.ceil(data.length / dataAppendBytesMax)} data appends; ranges, conditions and errors as Azure`);
});

test('Put Block / Put Block List / Get Block List: commit, recommit from committed, invalid lists', async () => {
  const container = stamp.client.getContainerClient('staged');
  await container.create();
  const blob = container.getBlockBlobClient('big');
  const parts = [randomBytes(1000), randomBytes(2000), randomBytes(3000)];
  for (const [index, part] of parts.entries()) await blob.stageBlock(blockId(index), part, part.length);
  const staged = await blob.getBlockList('all');
  assert.equal(staged.uncommittedBlocks?.length, 3);
  assert.equal(staged.committedBlocks?.length, 0);
  await expectError(() => blob.getProperties(), 404, 'BlobNotFound');
  await blob.commitBlockList([blockId(0), blockId(1), blockId(2)], { metadata: { a: '1' } });
  assert.ok((await blob.downloadToBuffer()).equals(Buffer.concat(parts)));
  const committed = await blob.getBlockList('all');
  assert.deepEqual(committed.committedBlocks?.map((b) => [b.name, b.size]), parts.map((p, i) => [blockId(i), p.length]));
  assert.equal(committed.uncommittedBlocks?.length, 0, 'uncommitted blocks are gone after the commit');
  const extra = randomBytes(500);
  await blob.stageBlock(blockId(9), extra, extra.length);
  await blob.commitBlockList([blockId(2), blockId(9), blockId(0)]);
  assert.ok((await blob.downloadToBuffer()).equals(Buffer.concat([parts[2] ?? Buffer.alloc(0), extra, parts[0] ?? Buffer.alloc(0)])), 'committed blocks reused, reordered');
  await expectError(() => blob.commitBlockList([blockId(1)]), 400, 'InvalidBlockList');
  await expectError(() => blob.commitBlockList([blockId(42)]), 400, 'InvalidBlockList');
  await expectError(() => blob.commitBlockList([blockId(2)], { conditions: { ifMatch: '"0x1"' } }), 412, 'ConditionNotMet');
  await expectError(() => blob.stageBlock('bad!', 'x', 1), 400, undefined);
});

async function streamBytes(stream: NodeJS.ReadableStream | undefined): Promise<Buffer> {
  if (stream === undefined) throw new Error('no body');
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

test('SAS create-only refuses overwrites; anonymous reads follow the container\'s public access', async (t) => {
  const container = stamp.client.getContainerClient('access');
  await container.create({ access: 'blob' });
  await container.getBlockBlobClient('existing').upload('old', 3);
  const credential = new StorageSharedKeyCredential('devstoreaccount1', accountKeyBase64);
  const sas = generateBlobSASQueryParameters({ containerName: 'access', permissions: ContainerSASPermissions.parse('c'), expiresOn: new Date(Date.now() + 3_600_000) }, credential).toString();
  const createOnly = new ContainerClient(`${container.url}?${sas}`, new AnonymousCredential(), { retryOptions: { maxTries: 1 } });
  await createOnly.getBlockBlobClient('fresh').upload('new', 3);
  await expectError(() => createOnly.getBlockBlobClient('existing').upload('overwrite', 9), 409, 'BlobAlreadyExists');
  assert.equal((await container.getBlockBlobClient('existing').downloadToBuffer()).toString(), 'old', 'the create-only SAS changed nothing');
  const anonymous = new ContainerClient(container.url, new AnonymousCredential(), { retryOptions: { maxTries: 1 } });
  assert.equal((await anonymous.getBlockBlobClient('fresh').downloadToBuffer()).toString(), 'new', 'public blob access reads anonymously');
  await expectError(() => anonymous.listBlobsFlat().byPage().next(), 404, undefined);
  await container.setAccessPolicy('container');
  const listed = await anonymous.listBlobsFlat().byPage().next();
  assert.equal(listed.done === true ? 0 : listed.value.segment.blobItems.length, 2, 'public container access lists anonymously');
  await container.setAccessPolicy();
  await expectError(() => anonymous.getBlockBlobClient('fresh').download(), 404, undefined);
  const plain = container.getBlockBlobClient('existing');
  assert.deepEqual((await plain.getBlockList('committed')).committedBlocks, [], 'a Put Blob blob has no named committed blocks');
  t.diagnostic('create-only SAS: 1 create allowed, 1 overwrite refused; anonymous access: blob, container, private');
});

test('a block list too large for the row is kept in the data stream and read back', async (t) => {
  const blob = stamp.client.getContainerClient('staged').getBlockBlobClient('many-blocks');
  const count = 300;
  const ids = Array.from({ length: count }, (_, i) => Buffer.from(`${'x'.repeat(40)}-${String(i).padStart(8, '0')}`).toString('base64'));
  const parts = ids.map((_, i) => Buffer.from(`part ${i};`));
  for (let at = 0; at < count; at += 25) {
    await Promise.all(ids.slice(at, at + 25).map((id, k) => blob.stageBlock(id, parts[at + k] ?? Buffer.alloc(0), (parts[at + k] ?? Buffer.alloc(0)).length)));
  }
  assert.equal((await blob.getBlockList('uncommitted')).uncommittedBlocks?.length, count);
  await blob.commitBlockList(ids);
  assert.ok((await blob.downloadToBuffer()).equals(Buffer.concat(parts)));
  const list = await blob.getBlockList('committed');
  assert.equal(list.committedBlocks?.length, count);
  assert.equal(list.committedBlocks?.[count - 1]?.name, ids[count - 1]);
  await blob.commitBlockList([...ids.slice(150), ...ids.slice(0, 150)]);
  assert.ok((await blob.downloadToBuffer()).equals(Buffer.concat([...parts.slice(150), ...parts.slice(0, 150)])), 'recommitted from a list stored as data');
  t.diagnostic(`${count} blocks with 60-byte ids (list > blockListInlineBytesMax) staged 25 at a time, committed, reordered from the committed list`);
});

test('block ids of one blob have one length: Put Block of another length is InvalidBlobOrBlock, a mixed list InvalidBlockList', async (t) => {
  const container = stamp.client.getContainerClient('idlengths');
  await container.create();
  const blob = container.getBlockBlobClient('b');
  const short = (n: number): string => Buffer.from(`s${n}`).toString('base64'); // 2 bytes
  await blob.stageBlock(blockId(1), 'aaa', 3); // 12 bytes
  await blob.stageBlock(blockId(1), 'AAA', 3); // the same id again: fine
  await expectError(() => blob.stageBlock(short(1), 'bbb', 3), 400, 'InvalidBlobOrBlock');
  assert.deepEqual((await blob.getBlockList('uncommitted')).uncommittedBlocks?.map((block) => block.name), [blockId(1)], 'the refused block was not staged');
  await blob.commitBlockList([blockId(1)]);
  // The commit emptied the staging: a new length may start a new generation of uncommitted blocks.
  await blob.stageBlock(short(2), 'ccc', 3);
  await expectError(() => blob.stageBlock(blockId(3), 'ddd', 3), 400, 'InvalidBlobOrBlock');
  // A list mixing the committed 12-byte id and the new 2-byte id is refused and changes nothing.
  await expectError(() => blob.commitBlockList([blockId(1), short(2)]), 400, 'InvalidBlockList');
  assert.equal((await blob.downloadToBuffer()).toString(), 'AAA');
  await blob.commitBlockList([short(2)]);
  assert.equal((await blob.downloadToBuffer()).toString(), 'ccc');
  t.diagnostic('2 refused Put Blocks (12 vs 2 bytes), 1 refused mixed list; the blob kept its content each time');
});

test('Put Block and Append Block answer Content-MD5 as Azure does by x-ms-version: only the one sent (2019-02-02 on), else the computed one; a mismatch stores nothing; Put Blob always does', async (t) => {
  const container = stamp.client.getContainerClient('blockmd5');
  await container.create();
  const blob = container.getBlockBlobClient('b');
  const part = randomBytes(5 * 1024 * 1024 + 7); // two data appends
  const md5 = createHash('md5').update(part).digest();
  const plain = await blob.stageBlock(blockId(0), part, part.length);
  assert.equal(plain.contentMD5, undefined, 'no Content-MD5 asked, none computed or returned');
  const checked = await blob.stageBlock(blockId(1), part, part.length, { transactionalContentMD5: md5 });
  assert.deepEqual(Buffer.from(checked.contentMD5 ?? []), md5, 'the checked Content-MD5 is echoed');
  await expectError(() => blob.stageBlock(blockId(2), part, part.length, { transactionalContentMD5: Buffer.alloc(16) }), 400, 'Md5Mismatch');
  assert.deepEqual((await blob.getBlockList('uncommitted')).uncommittedBlocks?.map((block) => block.name), [blockId(0), blockId(1)], 'the mismatched block was not staged');
  // x-ms-version 2018-11-09 (before 2019-02-02): Azure answers the MD5 it computed for every block.
  const old = stamp.clientAtVersion('2018-11-09').getContainerClient('blockmd5');
  const oldStaged = await old.getBlockBlobClient('b').stageBlock(blockId(3), part, part.length);
  assert.equal(oldStaged._response.headers.get('x-ms-version'), '2018-11-09', 'the request carried the old version');
  assert.deepEqual(Buffer.from(oldStaged.contentMD5 ?? []), md5, 'old version, no Content-MD5 sent: the computed MD5');
  await blob.commitBlockList([blockId(0), blockId(1), blockId(3)]);
  assert.ok((await blob.downloadToBuffer()).equals(Buffer.concat([part, part, part])));
  // Put Blob's writeBody: the MD5 of the body, hashed once; a body that carried a (checked) Content-MD5 is not hashed again.
  const key = Buffer.from('md5-probe');
  const body = bodyOf([part.subarray(0, 1000), part.subarray(1000)]);
  assert.deepEqual((await writeBody(stamp.tables, key, body)).md5, md5, 'no Content-MD5: computed');
  const marker = Buffer.alloc(16, 7); // what the DataBody checked stands: writeBody takes it as is
  assert.deepEqual((await writeBody(stamp.tables, key, { ...body, contentMd5: marker, [Symbol.asyncIterator]: body[Symbol.asyncIterator] })).md5, marker, 'a checked Content-MD5 is used, not a second hash');
  const put = await blob.upload(part, part.length);
  assert.deepEqual(Buffer.from(put.contentMD5 ?? []), md5, 'Put Blob returns the MD5');
  assert.deepEqual(Buffer.from((await blob.getProperties()).contentMD5 ?? []), md5, 'and stores it');

  // Append Block: the same answers; a mismatched block is not appended.
  const append = container.getAppendBlobClient('log');
  await append.create();
  const piece = randomBytes(64 * 1024);
  const pieceMd5 = createHash('md5').update(piece).digest();
  const appended = await append.appendBlock(piece, piece.length);
  assert.equal(appended.contentMD5, undefined, 'Append Block without Content-MD5: none computed or returned');
  const appendChecked = await append.appendBlock(piece, piece.length, { transactionalContentMD5: pieceMd5 });
  assert.deepEqual(Buffer.from(appendChecked.contentMD5 ?? []), pieceMd5, 'the checked Content-MD5 is echoed');
  await expectError(() => append.appendBlock(piece, piece.length, { transactionalContentMD5: Buffer.alloc(16) }), 400, 'Md5Mismatch');
  const oldAppended = await old.getAppendBlobClient('log').appendBlock(piece, piece.length);
  assert.deepEqual(Buffer.from(oldAppended.contentMD5 ?? []), pieceMd5, 'old version: the computed MD5');
  const props = await append.getProperties();
  assert.equal(props.blobCommittedBlockCount, 3, 'the mismatched block was not appended');
  assert.ok((await append.downloadToBuffer()).equals(Buffer.concat([piece, piece, piece])));
  t.diagnostic('Put Block / Append Block at 2026 versions: no Content-MD5 -> none, sent -> echoed, wrong -> 400 Md5Mismatch and nothing stored; at 2018-11-09 without one -> the computed MD5; Put Blob stores the MD5');
});

test('x-ms-content-crc64 on Put Block, Append Block and Put Blob: checked and echoed, a mismatch is 400 Crc64Mismatch and stores nothing, with Content-MD5 400 BothCrc64AndMd5HeaderPresent; range CRC64 on Get Blob', async (t) => {
  const container = stamp.client.getContainerClient('blockcrc');
  await container.create();
  const blob = container.getBlockBlobClient('b');
  const part = randomBytes(5 * 1024 * 1024 + 7); // two data appends
  const crc = crc64(part);
  const staged = await blob.stageBlock(blockId(0), part, part.length, { transactionalContentCrc64: crc });
  assert.deepEqual(Buffer.from(staged.xMsContentCrc64 ?? []), crc, 'the checked CRC64 is echoed');
  assert.equal(staged.contentMD5, undefined);
  const wrong = Buffer.from(crc);
  wrong[0] = (wrong[0] ?? 0) ^ 1;
  await expectError(() => blob.stageBlock(blockId(1), part, part.length, { transactionalContentCrc64: wrong }), 400, 'Crc64Mismatch');
  assert.deepEqual((await blob.getBlockList('uncommitted')).uncommittedBlocks?.map((block) => block.name), [blockId(0)], 'the mismatched block was not staged');
  const both = stamp.clientWithHeaders({ 'x-ms-content-crc64': crc.toString('base64') }).getContainerClient('blockcrc').getBlockBlobClient('b');
  await expectError(() => both.stageBlock(blockId(2), part, part.length, { transactionalContentMD5: createHash('md5').update(part).digest() }), 400, 'BothCrc64AndMd5HeaderPresent');

  const append = container.getAppendBlobClient('log');
  await append.create();
  const piece = randomBytes(100 * 1024);
  const appended = await append.appendBlock(piece, piece.length, { transactionalContentCrc64: crc64(piece) });
  assert.deepEqual(Buffer.from(appended.xMsContentCrc64 ?? []), crc64(piece));
  await expectError(() => append.appendBlock(piece, piece.length, { transactionalContentCrc64: crc }), 400, 'Crc64Mismatch');
  assert.equal((await append.getProperties()).blobCommittedBlockCount, 1, 'the mismatched block was not appended');

  // Put Blob (the SDK has no CRC64 option for it: the header is set by the pipeline), inline and streamed bodies.
  for (const size of [1024, 300 * 1024]) {
    const body = randomBytes(size);
    const good = stamp.clientWithHeaders({ 'x-ms-content-crc64': crc64(body).toString('base64') }).getContainerClient('blockcrc');
    const put = await good.getBlockBlobClient(`put-${size}`).upload(body, body.length);
    assert.equal(put._response.headers.get('x-ms-content-crc64'), crc64(body).toString('base64'));
    assert.ok((await container.getBlockBlobClient(`put-${size}`).downloadToBuffer()).equals(body));
    await expectError(() => good.getBlockBlobClient(`bad-${size}`).upload(randomBytes(size), size), 400, 'Crc64Mismatch');
    await expectError(() => container.getBlockBlobClient(`bad-${size}`).getProperties(), 404, undefined);
  }

  await blob.commitBlockList([blockId(0)]);
  const range = await blob.download(1000, 4096, { rangeGetContentCrc64: true });
  assert.deepEqual(Buffer.from(range.contentCrc64 ?? []), crc64(part.subarray(1000, 5096)), 'range CRC64');
  assert.ok((await streamBytes(range.readableStreamBody)).equals(part.subarray(1000, 5096)));
  await expectError(() => blob.download(0, 5 * 1024 * 1024, { rangeGetContentCrc64: true }), 400, 'OutOfRangeInput');
  t.diagnostic('CRC64 checked on Put Block (5 MiB), Append Block (100 KiB), Put Blob (1 KiB inline, 300 KiB streamed): echoed; 1 flipped bit -> Crc64Mismatch, nothing stored; with Content-MD5 -> BothCrc64AndMd5HeaderPresent; a 4 KiB range CRC64 matches');
});
