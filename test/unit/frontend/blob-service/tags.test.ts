// Blob index tags through the official SDK on a real in-process stamp (blob-stamp.ts):
// - Find Blobs by Tags (account and container level) answered from the tag index, checked against
//   a model of every blob's tags after Put Blob, Put Block List, Create Append Blob, Set Blob Tags,
//   overwrites, deletes and a deleted + re-created container, for equality, range, AND and
//   @container expressions, in pages of 3;
// - concurrent Set Blob Tags on the same blobs: Find agrees with every blob's final tags (the index
//   protocol of tag-index.ts under races), stale index rows counted;
// - Azure's refusals of a `where` (400 InvalidQueryParameterValue) and of tags (400 InvalidTag);
// - x-ms-if-tags on every operation Azure honours it on (412 ConditionNotMet when false, the
//   operation done when true; 400 InvalidHeaderValue when it does not parse);
// - List Blobs include=tags.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ContainerClient, Tags } from '@azure/storage-blob';
import { evaluateTagPredicate, parseFindExpression } from '../../../../src/frontend/blob-service/tag-query.ts';
import { BlobStamp, expectError } from './blob-stamp.ts';

let stamp: BlobStamp;
before(async () => { stamp = await BlobStamp.start(); });
after(async () => { await stamp.stop(); });

/** The model: container/name → tags, for blobs that exist now. */
type Model = Map<string, Tags>;

function expected(model: Model, where: string, container?: string): string[] {
  const expression = parseFindExpression(where);
  const out: string[] = [];
  for (const [path, tags] of model) {
    const [box = '', name = ''] = path.split('/');
    if (container !== undefined && box !== container) continue;
    if (evaluateTagPredicate(expression.predicate, Object.entries(tags).map(([key, value]) => ({ key, value })), box)) out.push(`${box}/${name}`);
  }
  return out.sort();
}

async function found(where: string, container?: ContainerClient): Promise<{ names: string[]; pages: number; tags: Tags[] }> {
  const names: string[] = [];
  const tags: Tags[] = [];
  let pages = 0;
  const source = container === undefined ? stamp.client.findBlobsByTags(where) : container.findBlobsByTags(where);
  for await (const page of source.byPage({ maxPageSize: 3 })) {
    pages += 1;
    for (const item of page.blobs) {
      names.push(`${item.containerName}/${item.name}`);
      tags.push(item.tags ?? {});
    }
  }
  return { names: names.sort(), pages, tags };
}

test('Find Blobs by Tags from the index agrees with a model after puts, commits, appends, re-tags, overwrites, deletes and a re-created container', async (t) => {
  const model: Model = new Map();
  const boxes = ['ix-a', 'ix-b', 'ix-c'].map((name) => stamp.client.getContainerClient(name));
  for (const box of boxes) await box.create();
  for (let i = 0; i < 30; i++) {
    const box = boxes[i % 3];
    assert.ok(box !== undefined);
    const name = `b${String(i).padStart(2, '0')}`;
    const tags: Tags = { project: i % 2 === 0 ? 'kura' : 'other', n: String(i % 10), 'tier level': i < 15 ? 'low' : 'high' };
    if (i % 3 === 0) await box.getBlockBlobClient(name).upload('x', 1, { tags });
    else if (i % 3 === 1) {
      const blob = box.getBlockBlobClient(name);
      await blob.stageBlock('YmxvY2sx', 'abc', 3);
      await blob.commitBlockList(['YmxvY2sx'], { tags });
    } else await box.getAppendBlobClient(name).create({ tags });
    model.set(`${box.containerName}/${name}`, tags);
  }
  const [a, b, c] = boxes;
  assert.ok(a !== undefined && b !== undefined && c !== undefined);
  // Re-tag, overwrite without tags, delete, and delete + re-create a container.
  await a.getBlockBlobClient('b00').setTags({ project: 'moved', n: '42' });
  model.set('ix-a/b00', { project: 'moved', n: '42' });
  await b.getBlockBlobClient('b01').upload('y', 1);
  model.set('ix-b/b01', {});
  await c.getAppendBlobClient('b02').delete();
  model.delete('ix-c/b02');
  await c.delete();
  for (const key of [...model.keys()]) if (key.startsWith('ix-c/')) model.delete(key);
  const recreated = stamp.client.getContainerClient('ix-c');
  await waitRecreate(recreated);
  await recreated.getBlockBlobClient('b05').upload('z', 1, { tags: { project: 'kura', n: '7' } });
  model.set('ix-c/b05', { project: 'kura', n: '7' });

  const expressions = [
    '"project" = \'kura\'', 'project = \'other\' AND n >= \'5\'', '"n" > \'3\' AND "n" <= \'7\'', '"n" < \'2\'',
    '"tier level" = \'low\' AND project = \'kura\'', '@container = \'ix-a\' AND project = \'kura\'', '"n" = \'42\'', '"project" = \'nothing\'',
  ];
  let checked = 0;
  for (const where of expressions) {
    const account = await found(where);
    assert.deepEqual(account.names, expected(model, where), where);
    checked += account.names.length;
    const inA = await found(where, a);
    assert.deepEqual(inA.names, expected(model, where, 'ix-a'), `container-level: ${where}`);
  }
  const answer = await found('"project" = \'kura\' AND "n" >= \'0\'');
  assert.ok(answer.tags.every((tags) => Object.keys(tags).sort().join() === 'n,project'), 'only the tags the expression names are answered');
  t.diagnostic(`${model.size} blobs in the model, ${expressions.length} expressions x (account + container level) in pages of 3: ${checked} account-level matches, all equal to the model`);
});

async function waitRecreate(container: ContainerClient): Promise<void> {
  // Azure refuses a re-create while the old container is being deleted; Kura allows it at once.
  await container.create();
}

test('concurrent Set Blob Tags on the same blobs: Find agrees with every blob\'s final tags', async (t) => {
  const box = stamp.client.getContainerClient('ix-race');
  await box.create();
  const names = ['r0', 'r1', 'r2', 'r3'];
  for (const name of names) await box.getBlockBlobClient(name).upload('x', 1, { tags: { k: 'a' } });
  const values = ['a', 'b', 'c'];
  let writes = 0;
  await Promise.all(Array.from({ length: 8 }, async (_, writer) => {
    for (let round = 0; round < 12; round++) {
      const name = names[(writer + round) % names.length] ?? 'r0';
      await box.getBlockBlobClient(name).setTags({ k: values[(writer * 7 + round) % 3] ?? 'a', w: String(writer) });
      writes += 1;
    }
  }));
  const finalTags = new Map<string, string>();
  for (const name of names) finalTags.set(name, (await box.getBlockBlobClient(name).getTags()).tags['k'] ?? '');
  for (const value of values) {
    const got = (await found(`"k" = '${value}' AND @container = 'ix-race'`)).names;
    assert.deepEqual(got, names.filter((name) => finalTags.get(name) === value).map((name) => `ix-race/${name}`), `k = ${value}`);
  }
  const rows = await stamp.tables.scan({ prefix: Buffer.from('Tdevstoreaccount1\0k\0'), limit: 1000 });
  const indexRows = rows.items.filter((item) => item.kind === 'row' && item.row.key.includes(Buffer.from('ix-race'))).length;
  t.diagnostic(`${writes} concurrent Set Blob Tags by 8 writers on ${names.length} blobs: Find = final tags for every value; ${indexRows} index rows for ${names.length} live (k) tags (${indexRows - names.length} stale, filtered by verification)`);
});

test('Find Blobs by Tags refuses what Azure refuses: 400 InvalidQueryParameterValue', async (t) => {
  const bad = [
    '"a" = \'1\' OR "b" = \'2\'', '"a" <> \'1\'', '"a" = ', '"a" == \'1\'', 'a = \'1\' AND', '(a = \'1\'',
    Array.from({ length: 11 }, (_, i) => `"k${i}" = 'v'`).join(' AND '), `"${'k'.repeat(129)}" = 'v'`, `"k" = '${'v'.repeat(257)}'`,
    '"k" = \'bad@value\'', '@container = \'x\'', '@other = \'x\' AND k = \'v\'', '@container > \'x\' AND k = \'v\'',
  ];
  for (const where of bad) await expectError(() => stamp.client.findBlobsByTags(where).byPage().next(), 400, 'InvalidQueryParameterValue');
  const ok = Array.from({ length: 10 }, (_, i) => `"k${i}" = 'v'`).join(' AND ') + ' AND @container = \'x\'';
  await stamp.client.findBlobsByTags(ok).byPage().next();
  const box = stamp.client.getContainerClient('ix-bad');
  await box.create();
  const blob = box.getBlockBlobClient('b');
  await blob.upload('x', 1);
  await expectError(() => blob.setTags(Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v']))), 400, 'InvalidTag');
  await expectError(() => blob.setTags({ ['k'.repeat(129)]: 'v' }), 400, 'InvalidTag');
  await expectError(() => blob.setTags({ k: 'v'.repeat(257) }), 400, 'InvalidTag');
  await expectError(() => blob.setTags({ '': 'v' }), 400, 'InvalidTag');
  await blob.setTags({ ['k'.repeat(128)]: 'v'.repeat(256) });
  t.diagnostic(`${bad.length} bad expressions refused; 10 tags + @container accepted; 4 bad tag sets refused, 128/256-character key/value kept`);
});

test('x-ms-if-tags on every operation Azure honours it on: 412 when false, done when true, 400 when it does not parse', async (t) => {
  const box = stamp.client.getContainerClient('ix-cond');
  await box.create();
  const blob = box.getBlockBlobClient('c');
  await blob.upload('hello', 5, { tags: { state: 'on' } });
  const append = box.getAppendBlobClient('ap');
  await append.create({ tags: { state: 'on' } });
  const no = { tagConditions: '"state" = \'off\'' };
  const yes = { tagConditions: '"state" = \'on\'' };
  const operations: [string, (conditions: typeof yes) => Promise<unknown>][] = [
    ['Get Blob', (conditions) => blob.download(0, undefined, { conditions })],
    ['Get Blob Properties', (conditions) => blob.getProperties({ conditions })],
    ['Set Blob Properties', (conditions) => blob.setHTTPHeaders({ blobContentType: 'text/plain' }, { conditions })],
    ['Set Blob Metadata', (conditions) => blob.setMetadata({ m: '1' }, { conditions })],
    ['Get Blob Tags', (conditions) => blob.getTags({ conditions })],
    ['Set Blob Tags', (conditions) => blob.setTags({ state: 'on' }, { conditions })],
    ['Snapshot Blob', (conditions) => blob.createSnapshot({ conditions })],
    ['Set Blob Tier', (conditions) => blob.setAccessTier('Cool', { conditions })],
    ['Put Blob', (conditions) => blob.upload('again', 5, { conditions, tags: { state: 'on' } })],
    ['Put Block List', async (conditions) => {
      await blob.stageBlock('YmxvY2sx', 'abc', 3);
      return blob.commitBlockList(['YmxvY2sx'], { conditions, tags: { state: 'on' } });
    }],
    ['Append Block', (conditions) => append.appendBlock('more', 4, { conditions })],
    ['Lease Blob', async (conditions) => {
      const lease = blob.getBlobLeaseClient();
      await lease.acquireLease(15, { conditions });
      return lease.releaseLease();
    }],
    ['Copy Blob From URL (destination; x-ms-tags kept)', (conditions) => box.getBlockBlobClient('c').syncCopyFromURL(append.url, { conditions, tags: { state: 'on' } })],
  ];
  for (const [name, call] of operations) {
    await expectError(() => call(no), 412, 'ConditionNotMet').catch((error: unknown) => { throw new Error(`${name}: ${String(error)}`); });
    await call(yes).catch((error: unknown) => { throw new Error(`${name} with a true condition: ${String(error)}`); });
  }
  await expectError(() => blob.getProperties({ conditions: { tagConditions: '"state" = ' } }), 400, 'InvalidHeaderValue');
  await expectError(() => blob.delete({ conditions: no }), 412, 'ConditionNotMet');
  await blob.delete({ conditions: yes, deleteSnapshots: 'include' });
  t.diagnostic(`${operations.length + 1} operations: 412 ConditionNotMet with a false x-ms-if-tags, done with a true one; unparsable -> 400 InvalidHeaderValue`);
});

test('List Blobs include=tags returns each blob\'s tags and tag count', async () => {
  const box = stamp.client.getContainerClient('ix-list');
  await box.create();
  await box.getBlockBlobClient('one').upload('1', 1, { tags: { a: '1', b: '2' } });
  await box.getBlockBlobClient('two').upload('2', 1);
  const items = [];
  for await (const item of box.listBlobsFlat({ includeTags: true })) items.push(item);
  assert.deepEqual(items.map((item) => [item.name, item.tags ?? null, item.properties.tagCount ?? 0]), [['one', { a: '1', b: '2' }, 2], ['two', null, 0]]);
});
