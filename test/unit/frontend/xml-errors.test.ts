// Safe XML (bombs, DOCTYPE, depth, sizes, shapes), the response serialisers, the request-body
// contract (length and MD5 enforced, last chunk held back) and the one error table.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import fc from 'fast-check';
import { XMLValidator } from 'fast-xml-parser';
import { errorBodyXml, errorTable, FrontendError, kuraErrorCodes, mapError } from '../../../src/frontend/errors.ts';
import { StorageError, storageErrorCodes } from '../../../src/util/errors.ts';
import {
  parseBlockListXml, parseServicePropertiesXml, parseSignedIdentifiersXml, parseTagsXml, parseXmlDocument,
} from '../../../src/frontend/xml.ts';
import { blockListXml, servicePropertiesXml, signedIdentifiersXml, tagsXml } from '../../../src/frontend/xml-responses.ts';
import { DataBody } from '../../../src/frontend/request-body.ts';
import type { BlockId, ETag } from '../../../src/frontend/model.ts';

const utf8 = (text: string): Uint8Array => Buffer.from(text, 'utf8');

function codeOf(run: () => unknown): string {
  try {
    run();
    return 'ok';
  } catch (error) {
    return error instanceof FrontendError ? error.code : `untyped: ${String(error)}`;
  }
}

test('hostile XML is refused before it can cost anything', (t) => {
  const laughs = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]><BlockList><Latest>&lol2;</Latest></BlockList>`;
  const external = `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Tags><TagSet><Tag><Key>&xxe;</Key><Value>v</Value></Tag></TagSet></Tags>`;
  const deep = `${'<a>'.repeat(10_000)}${'</a>'.repeat(10_000)}`;
  const cases: [string, string, string][] = [
    ['billion laughs', laughs, 'InvalidXmlDocument'],
    ['external entity', external, 'InvalidXmlDocument'],
    ['lower-case doctype', laughs.replace('DOCTYPE', 'doctype'), 'InvalidXmlDocument'],
    ['depth bomb', deep, 'InvalidXmlDocument'],
    ['CDATA', '<BlockList><Latest><![CDATA[AAAA]]></Latest></BlockList>', 'InvalidXmlDocument'],
    ['unclosed', '<BlockList><Latest>AAAA</Latest>', 'InvalidXmlDocument'],
    ['two roots', '<BlockList></BlockList><BlockList></BlockList>', 'InvalidXmlDocument'],
    ['not XML', '{"json":true}', 'InvalidXmlDocument'],
    ['undefined entity', '<BlockList><Latest>&foo;</Latest></BlockList>', 'InvalidXmlDocument'],
  ];
  for (const [name, text, code] of cases) assert.equal(codeOf(() => parseBlockListXml(utf8(text))), code, name);
  assert.equal(codeOf(() => parseXmlDocument(new Uint8Array([0x3c, 0x61, 0x3e, 0xff, 0xfe, 0x3c, 0x2f, 0x61, 0x3e]))), 'InvalidXmlDocument', 'not UTF-8');
  assert.equal(codeOf(() => parseXmlDocument(new Uint8Array(9 * 1024 * 1024))), 'RequestBodyTooLarge');
  t.diagnostic(`hostile XML documents refused: ${cases.length + 2}/${cases.length + 2}`);
});

test('request documents parse into typed values and wrong shapes get Azure\'s errors', () => {
  const list = parseBlockListXml(utf8('<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>AAAA</Latest><Committed>QkJCQg==</Committed><Uncommitted>Q0NDQw==</Uncommitted><Latest>AAAA</Latest></BlockList>'));
  assert.deepEqual(list.map((e) => `${e.kind}:${e.id}`), ['Latest:AAAA', 'Committed:QkJCQg==', 'Uncommitted:Q0NDQw==', 'Latest:AAAA']);
  assert.equal(codeOf(() => parseBlockListXml(utf8('<BlockList><Latest>a*b</Latest></BlockList>'))), 'InvalidBlockId');
  assert.equal(codeOf(() => parseBlockListXml(utf8('<BlockList><Bogus>AAAA</Bogus></BlockList>'))), 'InvalidBlockList');
  assert.equal(codeOf(() => parseBlockListXml(utf8(`<BlockList>${'<Latest>AAAA</Latest>'.repeat(50_001)}</BlockList>`))), 'BlockListTooLong');
  assert.equal(codeOf(() => parseBlockListXml(utf8('<Tags></Tags>'))), 'InvalidXmlDocument');
  assert.deepEqual(parseTagsXml(utf8('<Tags><TagSet><Tag><Key>k 1</Key><Value>a=b</Value></Tag><Tag><Key>e</Key></Tag></TagSet></Tags>')), [{ key: 'k 1', value: 'a=b' }, { key: 'e', value: '' }]);
  assert.equal(codeOf(() => parseTagsXml(utf8('<Tags><TagSet><Tag><Key>k &amp; 1</Key><Value>v</Value></Tag></TagSet></Tags>'))), 'InvalidTag');
  assert.equal(codeOf(() => parseTagsXml(utf8(`<Tags><TagSet>${'<Tag><Key>k</Key><Value>v</Value></Tag>'.repeat(11)}</TagSet></Tags>`))), 'InvalidTag');
  assert.equal(codeOf(() => parseTagsXml(utf8('<Tags><TagSet><Tag><Value>v</Value></Tag></TagSet></Tags>'))), 'MissingRequiredXmlNode');
  const acl = parseSignedIdentifiersXml(utf8('<SignedIdentifiers><SignedIdentifier><Id>readers</Id><AccessPolicy><Start>2026-01-01T00:00:00Z</Start><Expiry>2026-02-01T00:00:00Z</Expiry><Permission>rl</Permission></AccessPolicy></SignedIdentifier></SignedIdentifiers>'));
  assert.deepEqual(acl, [{ id: 'readers', start: '2026-01-01T00:00:00Z', expiry: '2026-02-01T00:00:00Z', permission: 'rl' }]);
  assert.deepEqual(parseSignedIdentifiersXml(new Uint8Array()), []);
  assert.equal(codeOf(() => parseSignedIdentifiersXml(utf8(`<SignedIdentifiers>${'<SignedIdentifier><Id>a</Id></SignedIdentifier>'.repeat(6)}</SignedIdentifiers>`))), 'InvalidXmlDocument');
  assert.equal(codeOf(() => parseSignedIdentifiersXml(utf8('<SignedIdentifiers><SignedIdentifier><Id>a</Id><AccessPolicy><Permission>rz</Permission></AccessPolicy></SignedIdentifier></SignedIdentifiers>'))), 'InvalidXmlNodeValue');
  const props = parseServicePropertiesXml(utf8('<StorageServiceProperties><Cors><CorsRule><AllowedOrigins>https://a.example</AllowedOrigins><AllowedMethods>GET,PUT</AllowedMethods><MaxAgeInSeconds>60</MaxAgeInSeconds><ExposedHeaders>x-ms-meta-*</ExposedHeaders><AllowedHeaders>x-ms-meta-*</AllowedHeaders></CorsRule></Cors><DefaultServiceVersion>2021-08-06</DefaultServiceVersion><DeleteRetentionPolicy><Enabled>true</Enabled><Days>7</Days></DeleteRetentionPolicy></StorageServiceProperties>'));
  assert.deepEqual(props.cors?.[0]?.allowedMethods, ['GET', 'PUT']);
  assert.deepEqual(props.deleteRetentionPolicy, { enabled: true, days: 7 });
  assert.equal(codeOf(() => parseServicePropertiesXml(utf8('<StorageServiceProperties><Cors><CorsRule><AllowedOrigins>*</AllowedOrigins><AllowedMethods>FETCH</AllowedMethods><MaxAgeInSeconds>1</MaxAgeInSeconds></CorsRule></Cors></StorageServiceProperties>'))), 'InvalidXmlNodeValue');
});

test('response documents are well-formed, escape every value and round-trip', (t) => {
  const hostile = 'a<b>&"\'\u0001]]>';
  const documents = [
    tagsXml([{ key: 'k', value: hostile }]),
    blockListXml({ committed: [{ id: 'AAAA' as BlockId, size: 4 }], uncommitted: [{ id: 'QkJC' as BlockId, size: 1 }], etag: '"x"' as ETag }, 'all'),
    signedIdentifiersXml({ publicAccess: 'blob', identifiers: [{ id: hostile, permission: 'r' }] }),
    servicePropertiesXml({ cors: [{ allowedOrigins: ['*'], allowedMethods: ['GET'], allowedHeaders: [], exposedHeaders: [hostile], maxAgeInSeconds: 5 }], defaultServiceVersion: '2021-08-06' }),
  ];
  for (const document of documents) assert.equal(XMLValidator.validate(document), true, document);
  const entries = parseBlockListXml(utf8('<BlockList><Committed>AAAA</Committed></BlockList>'));
  assert.equal(entries[0]?.id, 'AAAA');
  fc.assert(fc.property(fc.string({ maxLength: 30 }), (value) => {
    assert.equal(XMLValidator.validate(signedIdentifiersXml({ publicAccess: null, identifiers: [{ id: value }] })), true);
  }), { numRuns: 2000, seed: 3 });
  t.diagnostic(`response documents validated: ${documents.length} fixed + 2000 fuzzed`);
});

test('fuzz: the XML parser is total on random and mutated documents', (t) => {
  const seedDoc = '<BlockList><Latest>AAAA</Latest><Committed>QkJCQg==</Committed></BlockList>';
  let runs = 0;
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.tuple(fc.nat(seedDoc.length), fc.string({ maxLength: 6 })).map(([i, s]) => seedDoc.slice(0, i) + s + seedDoc.slice(i))), (text) => {
    runs += 1;
    const code = codeOf(() => parseBlockListXml(utf8(text)));
    assert.ok(!code.startsWith('untyped'), code);
  }), { numRuns: 5000, seed: 11 });
  t.diagnostic(`fuzzed XML documents: ${runs}, untyped failures: 0`);
});

async function drain(body: AsyncIterable<Uint8Array>): Promise<{ chunks: number; error: string | null }> {
  let chunks = 0;
  try {
    for await (const chunk of body) chunks += chunk.length > 0 ? 1 : 0;
    return { chunks, error: null };
  } catch (error) {
    return { chunks, error: error instanceof FrontendError ? error.code : String(error) };
  }
}

async function* source(parts: readonly string[], failAtEnd = false): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield await Promise.resolve(utf8(part));
  if (failAtEnd) throw new Error('ECONNRESET');
}

test('request bodies: exact length and Content-MD5 enforced before the last chunk is delivered', async () => {
  const md5 = createHash('md5').update('hello world').digest();
  assert.deepEqual(await drain(new DataBody(source(['hello ', 'world']), 11, md5)), { chunks: 2, error: null });
  // Wrong MD5, short body, long body, client gone: the last chunk is never delivered.
  assert.deepEqual(await drain(new DataBody(source(['hello ', 'world']), 11, createHash('md5').update('x').digest())), { chunks: 1, error: 'Md5Mismatch' });
  assert.deepEqual(await drain(new DataBody(source(['hello ', 'wor']), 11, undefined)), { chunks: 1, error: 'InvalidInput' });
  assert.deepEqual(await drain(new DataBody(source(['hello ', 'world!']), 11, undefined)), { chunks: 0, error: 'InvalidInput' });
  assert.deepEqual(await drain(new DataBody(source(['hello ', 'world'], true), 11, undefined)), { chunks: 1, error: 'InvalidInput' });
  assert.deepEqual(await drain(new DataBody(source([]), 0, undefined)), { chunks: 0, error: null });
});

async function whole(body: DataBody): Promise<{ bytes: string; error: string | null }> {
  try {
    return { bytes: Buffer.concat(await body.chunks()).toString('utf8'), error: null };
  } catch (error) {
    return { bytes: '', error: error instanceof FrontendError ? error.code : String(error) };
  }
}

/** A Readable as the request is one (chunks read by events); `fail` errors it after the parts. */
function readable(parts: readonly string[], fail = false): Readable {
  const stream = new Readable({ read() {} });
  for (const part of parts) stream.push(utf8(part));
  if (fail) setImmediate(() => stream.destroy(new Error('ECONNRESET')));
  else stream.push(null);
  return stream;
}

test('request bodies read whole (chunks()): the same length, Content-MD5 and client-gone checks, from a Readable and from an iterable', async (t) => {
  const md5 = createHash('md5').update('hello world').digest();
  const wrong = createHash('md5').update('x').digest();
  let cases = 0;
  for (const from of [readable, (parts: readonly string[], fail?: boolean) => source(parts, fail)]) {
    assert.deepEqual(await whole(new DataBody(from(['hello ', 'world']), 11, md5)), { bytes: 'hello world', error: null });
    assert.deepEqual(await whole(new DataBody(from(['hello ', 'world']), 11, wrong)), { bytes: '', error: 'Md5Mismatch' });
    assert.deepEqual(await whole(new DataBody(from(['hello ', 'wor']), 11, undefined)), { bytes: '', error: 'InvalidInput' });
    assert.deepEqual(await whole(new DataBody(from(['hello ', 'world!']), 11, undefined)), { bytes: '', error: 'InvalidInput' });
    assert.deepEqual(await whole(new DataBody(from(['hello ', 'world'], true), 11, undefined)), { bytes: '', error: 'InvalidInput' });
    assert.deepEqual(await whole(new DataBody(from([]), 0, undefined)), { bytes: '', error: null });
    const once = new DataBody(from(['a']), 1, undefined);
    await once.chunks();
    assert.equal(once.consumed, true);
    assert.deepEqual(await whole(once), { bytes: '', error: 'InternalError' }, 'a body is read once');
    cases += 7;
  }
  const long = readable(['hello ', 'world!']);
  await whole(new DataBody(long, 11, undefined));
  assert.equal(long.destroyed, true, 'a body longer than its length is cut (destroyed), as leaving a for-await does');
  t.diagnostic(`whole-body cases: ${cases} (Readable and iterable sources)`);
});

test('the error table: every Kura code maps to an Azure status, code and message; unknown errors are 500', (t) => {
  const statuses = new Set<number>();
  for (const code of kuraErrorCodes) {
    const spec = errorTable[code];
    assert.ok(spec.status === 304 || (spec.status >= 400 && spec.status <= 503), code);
    assert.match(spec.azureCode, /^[A-Z][A-Za-z0-9]+$/, code);
    assert.ok(spec.message.length > 10, code);
    statuses.add(spec.status);
  }
  for (const code of storageErrorCodes) assert.equal(mapError(new StorageError(code, 'x')).kuraCode, code);
  const unknown = mapError(new TypeError('boom'));
  assert.deepEqual([unknown.spec.status, unknown.spec.azureCode, unknown.unexpected], [500, 'InternalError', true]);
  const body = errorBodyXml(mapError(new FrontendError('InvalidHeaderValue', 'x', [['HeaderName', 'x-ms-<evil>'], ['HeaderValue', 'a&b'.repeat(1000)]])), 'rid', new Date(0));
  assert.equal(XMLValidator.validate(body), true);
  assert.match(body, /<Code>InvalidHeaderValue<\/Code><Message>The value for one of the HTTP headers is not in the correct format\.\nRequestId:rid\nTime:1970-01-01T00:00:00\.000Z<\/Message><HeaderName>x-ms-&lt;evil&gt;<\/HeaderName>/);
  assert.ok(body.length < 6000, 'details are bounded');
  t.diagnostic(`error table rows: ${kuraErrorCodes.length} (${storageErrorCodes.length} storage, ${kuraErrorCodes.length - storageErrorCodes.length} front end), distinct statuses: ${statuses.size}`);
});

