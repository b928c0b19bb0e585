// Safe XML for the Blob API: parsing of the request documents (block lists, tags, ACLs,
// service properties) into the typed values of model.ts, and serialisers for the response
// documents (lists, properties, ACLs, block lists, tags).
//
// Invariants: a document is parsed only if it is at most xmlBodyBytesMax bytes, contains no
// DOCTYPE, ENTITY or CDATA declaration, and nests at most xmlDepthMax elements; only the five
// predefined entities and character references are expanded, so there is no entity expansion
// to amplify. Every list is bounded before it is built. Serialisers escape every text value.
// Fault model: request documents are hostile (bombs, deep nesting, huge counts, wrong shapes);
// failures are Azure's InvalidXmlDocument / InvalidXmlNodeValue / MissingRequiredXmlNode.

import { XMLParser, XMLValidator } from 'fast-xml-parser';
import {
  blockListEntriesMax, corsRuleItemsMax, corsRulesMax, signedIdentifierLengthMax,
  storedAccessPoliciesMax, xmlBodyBytesMax, xmlDepthMax,
} from '../constants.ts';
import { FrontendError } from './errors.ts';
import { parseBlockId } from './fields.ts';
import { checkTag, checkTagSet } from './header-fields.ts';
import type {
  BlobServiceProperties, BlobTag, BlockListEntry, BlockListKind, CorsRule, LoggingSettings,
  MetricsSettings, RetentionPolicy, SignedIdentifier, StaticWebsite,
} from './model.ts';

export interface XmlElement {
  readonly name: string;
  readonly children: readonly XmlElement[];
  readonly text: string;
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c)
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '');
}

function invalidXml(reason: string): FrontendError {
  return new FrontendError('InvalidXmlDocument', `invalid XML: ${reason}`, [['Reason', reason]]);
}

export function invalidNode(name: string, reason: string): FrontendError {
  return new FrontendError('InvalidXmlNodeValue', `invalid XML node ${name}: ${reason}`, [['XmlNodeName', name], ['Reason', reason]]);
}

const parser = new XMLParser({
  preserveOrder: true, ignoreAttributes: true, parseTagValue: false, trimValues: true,
  ignoreDeclaration: true, ignorePiTags: true, processEntities: true, htmlEntities: false,
  maxNestedTags: xmlDepthMax,
});

/** Parses a request document into an element tree, or throws InvalidXmlDocument. */
export function parseXmlDocument(bytes: Uint8Array): XmlElement {
  if (bytes.length > xmlBodyBytesMax) throw new FrontendError('RequestBodyTooLarge', 'XML body over its limit');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw invalidXml('not UTF-8');
  }
  if (/<!DOCTYPE|<!ENTITY|<!\[CDATA\[/i.test(text)) throw invalidXml('DOCTYPE, ENTITY and CDATA are not accepted');
  if (/&(?!(?:amp|lt|gt|quot|apos|#\d{1,7}|#x[0-9a-fA-F]{1,6});)/.test(text)) throw invalidXml('only the predefined entities are accepted');
  if (maxDepth(text) > xmlDepthMax) throw invalidXml('nested too deeply');
  if (XMLValidator.validate(text) !== true) throw invalidXml('not well-formed');
  let nodes: unknown;
  try {
    nodes = parser.parse(text);
  } catch {
    throw invalidXml('not well-formed');
  }
  const roots = toElements(nodes, 0);
  if (roots.length !== 1 || roots[0] === undefined) throw invalidXml('not exactly one root element');
  return roots[0];
}

/** Nesting depth by a linear scan of tags, so a depth bomb is refused before any parser recursion. */
function maxDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  for (let i = text.indexOf('<'); i !== -1; i = text.indexOf('<', i + 1)) {
    const next = text[i + 1];
    if (next === '/') depth -= 1;
    else if (next !== '?' && next !== '!') {
      const close = text.indexOf('>', i);
      if (close === -1) return deepest;
      if (text[close - 1] !== '/') depth += 1;
      deepest = Math.max(deepest, depth);
    }
  }
  return deepest;
}

function toElements(nodes: unknown, depth: number): XmlElement[] {
  if (!Array.isArray(nodes) || depth > xmlDepthMax) throw invalidXml('unexpected structure');
  const elements: XmlElement[] = [];
  for (const node of nodes as unknown[]) {
    if (typeof node !== 'object' || node === null) throw invalidXml('unexpected node');
    for (const [name, value] of Object.entries(node)) {
      if (name === '#text') continue;
      const children = toElements(value, depth + 1);
      elements.push({ name, children, text: textOf(value) });
    }
  }
  return elements;
}

function textOf(value: unknown): string {
  if (!Array.isArray(value)) return '';
  let text = '';
  for (const node of value as unknown[]) {
    if (typeof node === 'object' && node !== null && '#text' in node) text += String((node as Record<string, unknown>)['#text']);
  }
  return text;
}

function expectRoot(root: XmlElement, name: string): XmlElement {
  if (root.name !== name) throw invalidXml(`root element must be ${name}`);
  return root;
}

function child(element: XmlElement, name: string): XmlElement | undefined {
  return element.children.find((c) => c.name === name);
}

function requiredChild(element: XmlElement, name: string): XmlElement {
  const found = child(element, name);
  if (found === undefined) throw new FrontendError('MissingRequiredXmlNode', `missing ${name}`, [['XmlNodeName', name]]);
  return found;
}

// ---- request documents ----

/** Put Block List body: <BlockList> of Committed/Uncommitted/Latest in order. */
export function parseBlockListXml(bytes: Uint8Array): BlockListEntry[] {
  const root = expectRoot(parseXmlDocument(bytes), 'BlockList');
  if (root.children.length > blockListEntriesMax) throw new FrontendError('BlockListTooLong', 'more than 50,000 blocks');
  return root.children.map((element) => {
    if (element.name !== 'Committed' && element.name !== 'Uncommitted' && element.name !== 'Latest') {
      throw new FrontendError('InvalidBlockList', `unexpected element ${element.name}`);
    }
    const kind: BlockListKind = element.name;
    return { kind, id: parseBlockId(element.text, (reason) => new FrontendError('InvalidBlockId', reason)) };
  });
}

/** Set Blob Tags body: <Tags><TagSet><Tag><Key/><Value/></Tag>…</TagSet></Tags>. */
export function parseTagsXml(bytes: Uint8Array): readonly BlobTag[] {
  const root = expectRoot(parseXmlDocument(bytes), 'Tags');
  const set = requiredChild(root, 'TagSet');
  if (set.children.length > 10) throw new FrontendError('InvalidTag', 'more than 10 tags');
  return checkTagSet(set.children.map((tag) => {
    if (tag.name !== 'Tag') throw invalidNode(tag.name, 'expected Tag');
    return checkTag(requiredChild(tag, 'Key').text, child(tag, 'Value')?.text ?? '');
  }));
}

/** Set Container ACL body: <SignedIdentifiers> of at most 5 policies (an empty body clears). */
export function parseSignedIdentifiersXml(bytes: Uint8Array): readonly SignedIdentifier[] {
  if (bytes.length === 0) return [];
  const root = expectRoot(parseXmlDocument(bytes), 'SignedIdentifiers');
  if (root.children.length > storedAccessPoliciesMax) throw invalidXml('more than 5 signed identifiers');
  return root.children.map((element) => {
    if (element.name !== 'SignedIdentifier') throw invalidNode(element.name, 'expected SignedIdentifier');
    const id = requiredChild(element, 'Id').text;
    if (id.length === 0 || id.length > signedIdentifierLengthMax) throw invalidNode('Id', 'length 1-64');
    const policy = child(element, 'AccessPolicy');
    const start = policy === undefined ? undefined : child(policy, 'Start')?.text;
    const expiry = policy === undefined ? undefined : child(policy, 'Expiry')?.text;
    const permission = policy === undefined ? undefined : child(policy, 'Permission')?.text;
    for (const [name, value] of [['Start', start], ['Expiry', expiry]] as const) {
      if (value !== undefined && value !== '' && Number.isNaN(Date.parse(value))) throw invalidNode(name, 'not an ISO 8601 time');
    }
    if (permission !== undefined && !/^[racwdxyltmeopi]*$/.test(permission)) throw invalidNode('Permission', 'unknown permission letter');
    return { id, ...(start === undefined || start === '' ? {} : { start }), ...(expiry === undefined || expiry === '' ? {} : { expiry }), ...(permission === undefined ? {} : { permission }) };
  });
}

function bool(element: XmlElement, name: string): boolean {
  const text = requiredChild(element, name).text.toLowerCase();
  if (text !== 'true' && text !== 'false') throw invalidNode(name, 'not a boolean');
  return text === 'true';
}

function retention(element: XmlElement): RetentionPolicy {
  const enabled = bool(element, 'Enabled');
  const daysText = child(element, 'Days')?.text;
  if (daysText === undefined || !enabled) return { enabled };
  const days = Number(daysText);
  if (!/^\d{1,3}$/.test(daysText) || days < 1 || days > 365) throw invalidNode('Days', '1-365');
  return { enabled, days };
}

function logging(element: XmlElement): LoggingSettings {
  return {
    version: requiredChild(element, 'Version').text, read: bool(element, 'Read'), write: bool(element, 'Write'),
    delete: bool(element, 'Delete'), retentionPolicy: retention(requiredChild(element, 'RetentionPolicy')),
  };
}

function metrics(element: XmlElement): MetricsSettings {
  const enabled = bool(element, 'Enabled');
  const includeApis = child(element, 'IncludeAPIs') === undefined ? undefined : bool(element, 'IncludeAPIs');
  return {
    version: requiredChild(element, 'Version').text, enabled, ...(includeApis === undefined ? {} : { includeApis }),
    retentionPolicy: retention(requiredChild(element, 'RetentionPolicy')),
  };
}

function corsList(element: XmlElement, name: string, required: boolean): string[] {
  const found = required ? requiredChild(element, name) : child(element, name);
  if (found === undefined || found.text === '') return [];
  const items = found.text.split(',').map((item) => item.trim());
  if (items.length > corsRuleItemsMax || items.some((item) => item.length > 256)) throw invalidNode(name, 'too many or too long items');
  return items;
}

const corsMethods = new Set(['DELETE', 'GET', 'HEAD', 'MERGE', 'POST', 'OPTIONS', 'PUT', 'PATCH']);

function corsRule(element: XmlElement): CorsRule {
  if (element.name !== 'CorsRule') throw invalidNode(element.name, 'expected CorsRule');
  const allowedMethods = corsList(element, 'AllowedMethods', true);
  if (allowedMethods.some((method) => !corsMethods.has(method))) throw invalidNode('AllowedMethods', 'unknown method');
  const maxAgeText = requiredChild(element, 'MaxAgeInSeconds').text;
  if (!/^\d{1,10}$/.test(maxAgeText)) throw invalidNode('MaxAgeInSeconds', 'not a non-negative integer');
  return {
    allowedOrigins: corsList(element, 'AllowedOrigins', true), allowedMethods,
    allowedHeaders: corsList(element, 'AllowedHeaders', false), exposedHeaders: corsList(element, 'ExposedHeaders', false),
    maxAgeInSeconds: Number(maxAgeText),
  };
}

function staticWebsite(element: XmlElement): StaticWebsite {
  const optional = (name: string): { [key: string]: string } => {
    const text = child(element, name)?.text;
    return text === undefined || text === '' ? {} : { [name.charAt(0).toLowerCase() + name.slice(1)]: text };
  };
  return { enabled: bool(element, 'Enabled'), ...optional('IndexDocument'), ...optional('ErrorDocument404Path'), ...optional('DefaultIndexDocumentPath') };
}

/** Set Blob Service Properties body. Only elements present are returned (and replaced). */
export function parseServicePropertiesXml(bytes: Uint8Array): BlobServiceProperties {
  const root = expectRoot(parseXmlDocument(bytes), 'StorageServiceProperties');
  const get = (name: string): XmlElement | undefined => child(root, name);
  const cors = get('Cors');
  if (cors !== undefined && cors.children.length > corsRulesMax) throw invalidXml('more than 5 CORS rules');
  const version = get('DefaultServiceVersion')?.text;
  if (version !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(version)) throw invalidNode('DefaultServiceVersion', 'not a version');
  const pick = <T>(name: string, read: (e: XmlElement) => T): T | undefined => {
    const element = get(name);
    return element === undefined ? undefined : read(element);
  };
  const result: { -readonly [K in keyof BlobServiceProperties]: BlobServiceProperties[K] } = {};
  const loggingValue = pick('Logging', logging);
  if (loggingValue !== undefined) result.logging = loggingValue;
  const hour = pick('HourMetrics', metrics);
  if (hour !== undefined) result.hourMetrics = hour;
  const minute = pick('MinuteMetrics', metrics);
  if (minute !== undefined) result.minuteMetrics = minute;
  if (cors !== undefined) result.cors = cors.children.map(corsRule);
  if (version !== undefined) result.defaultServiceVersion = version;
  const deletePolicy = pick('DeleteRetentionPolicy', retention);
  if (deletePolicy !== undefined) result.deleteRetentionPolicy = deletePolicy;
  const website = pick('StaticWebsite', staticWebsite);
  if (website !== undefined) result.staticWebsite = website;
  return result;
}
