// Which hosts a front end may fetch copy sources from (docs/copy-sources.md, "Which hosts").
// Rules: `public` (default), `none`, `any`, an IPv4/IPv6 CIDR, or a host (name or IP literal) with
// an optional port. Refused whatever the rules say: the process's own admin and control-plane
// endpoints (`denied`) and the "this host" addresses (0.0.0.0/8, ::).
//
// Invariants: a rule set is parsed once (config.invalid naming the bad rule); checks are pure.
// The URL check (host, port) runs before anything is sent; the address check runs in the
// connector's DNS lookup on every address a name resolves to, so what is checked is what is
// connected to (no DNS rebinding between check and connect).
// Fault model: input is operator configuration (rules) and client input (URLs), both untrusted in
// shape; nothing here does I/O.

import { BlockList, isIP } from 'node:net';
import { StorageError } from '../../util/errors.ts';

export interface Endpoint {
  readonly host: string;
  /** null: every port of the host. */
  readonly port: number | null;
}

export interface CopySourcePolicy {
  readonly allowPublic: boolean;
  readonly allowAny: boolean;
  readonly ranges: BlockList;
  readonly hosts: readonly Endpoint[];
  readonly denied: readonly Endpoint[];
  /** The rules as given (logs, errors). */
  readonly rules: readonly string[];
}

/** Address ranges that are not public unicast (IANA special-purpose registries). */
const nonPublicRanges: readonly (readonly [string, number, 'ipv4' | 'ipv6'])[] = [
  ['0.0.0.0', 8, 'ipv4'], ['10.0.0.0', 8, 'ipv4'], ['100.64.0.0', 10, 'ipv4'], ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.0.0.0', 24, 'ipv4'], ['192.0.2.0', 24, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'], ['198.18.0.0', 15, 'ipv4'], ['198.51.100.0', 24, 'ipv4'], ['203.0.113.0', 24, 'ipv4'],
  ['224.0.0.0', 4, 'ipv4'], ['240.0.0.0', 4, 'ipv4'],
  ['::', 128, 'ipv6'], ['::1', 128, 'ipv6'], ['::ffff:0:0', 96, 'ipv6'], ['64:ff9b::', 96, 'ipv6'], ['100::', 64, 'ipv6'],
  ['2001:db8::', 32, 'ipv6'], ['fc00::', 7, 'ipv6'], ['fe80::', 10, 'ipv6'], ['ff00::', 8, 'ipv6'],
];
const nonPublic = new BlockList();
for (const [address, prefix, family] of nonPublicRanges) nonPublic.addSubnet(address, prefix, family);

/** "This host": never a meaningful copy source, refused under every rule. */
const thisHost = new BlockList();
thisHost.addSubnet('0.0.0.0', 8, 'ipv4');
thisHost.addAddress('::', 'ipv6');

export const copySourceAllowDefault: readonly string[] = ['public'];

function invalidRule(rule: string, why: string): StorageError {
  return new StorageError('config.invalid', `copy source rule "${rule}": ${why} (expected public, none, any, a CIDR or host[:port])`);
}

/** host[:port], [v6]:port or a bare IPv6 literal, lower-cased, brackets removed. */
export function parseEndpoint(text: string): Endpoint | null {
  const lower = text.trim().toLowerCase();
  if (isIP(lower) === 6) return { host: lower, port: null };
  const bracketed = /^\[([0-9a-f:.]+)\](?::(\d{1,5}))?$/.exec(lower);
  const plain = /^([a-z0-9.-]+)(?::(\d{1,5}))?$/.exec(lower);
  const match = bracketed ?? plain;
  if (match?.[1] === undefined) return null;
  const port = match[2] === undefined ? null : Number(match[2]);
  if (port !== null && (port < 1 || port > 65_535)) return null;
  return { host: match[1], port };
}

function familyOf(address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4';
}

/** Parses the rules (`--copy-source-allow`, repeatable); `denied` are this process's own endpoints. */
export function parseCopySourcePolicy(rules: readonly string[], denied: readonly string[] = []): CopySourcePolicy {
  const ranges = new BlockList();
  const hosts: Endpoint[] = [];
  let allowPublic = false;
  let allowAny = false;
  for (const rule of rules.flatMap((entry) => entry.split(',')).map((entry) => entry.trim()).filter((entry) => entry !== '')) {
    if (rule === 'public') allowPublic = true;
    else if (rule === 'any') allowAny = true;
    else if (rule === 'none') continue;
    else if (rule.includes('/')) {
      const [address = '', prefixText = ''] = rule.split('/');
      const prefix = Number(prefixText);
      const family = familyOf(address);
      if (isIP(address) === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 'ipv6' ? 128 : 32)) throw invalidRule(rule, 'not a CIDR');
      ranges.addSubnet(address, prefix, family);
    } else {
      const endpoint = parseEndpoint(rule);
      if (endpoint === null) throw invalidRule(rule, 'not a host');
      hosts.push(endpoint);
    }
  }
  const deniedEndpoints = denied.map((text) => parseEndpoint(text)).filter((endpoint): endpoint is Endpoint => endpoint !== null);
  return { allowPublic, allowAny, ranges, hosts, denied: deniedEndpoints, rules };
}

function matches(endpoint: Endpoint, host: string, port: number): boolean {
  return endpoint.host === host && (endpoint.port === null || endpoint.port === port);
}

/** Loopback names resolve to loopback: a denied 127.0.0.1:P also denies localhost:P and [::1]:P. */
function sameMachine(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function rulesText(policy: CopySourcePolicy): string {
  return policy.rules.length === 0 ? 'none' : policy.rules.join(',');
}

export type PolicyVerdict = { readonly ok: true; readonly byName: boolean } | { readonly ok: false; readonly reason: string };

/** The URL check: refused endpoints, then whether a later address check is needed (byName: an
 * allowed host name, whatever it resolves to). */
export function checkEndpoint(policy: CopySourcePolicy, host: string, port: number): PolicyVerdict {
  const name = host.toLowerCase().replace(/^\[|\]$/g, '');
  for (const denied of policy.denied) {
    if (denied.port === port && (denied.host === name || denied.host === '0.0.0.0' || denied.host === '::' || (sameMachine(denied.host) && sameMachine(name)))) {
      return { ok: false, reason: `${name}:${port} is an endpoint of this Kura process (admin or control plane), never a copy source` };
    }
  }
  if (policy.hosts.some((endpoint) => matches(endpoint, name, port))) return { ok: true, byName: true };
  if (isIP(name) !== 0) {
    const verdict = checkAddress(policy, name);
    return verdict.ok ? { ok: true, byName: false } : verdict;
  }
  if (!policy.allowAny && !policy.allowPublic && policy.ranges.rules.length === 0) return { ok: false, reason: `${name} is not allowed by --copy-source-allow (${rulesText(policy)})` };
  return { ok: true, byName: false };
}

/** The connect-time check of one resolved address. */
export function checkAddress(policy: CopySourcePolicy, address: string): PolicyVerdict {
  const family = familyOf(address);
  if (thisHost.check(address, family)) return { ok: false, reason: `${address} means "this host"` };
  if (policy.allowAny || policy.ranges.check(address, family)) return { ok: true, byName: false };
  if (policy.allowPublic && !nonPublic.check(address, family)) return { ok: true, byName: false };
  return { ok: false, reason: `${address} is not allowed by --copy-source-allow (${rulesText(policy)}; private, loopback and link-local addresses need a rule)` };
}

/** Azure keeps the copy source in the destination's properties; its SAS signature is not kept. */
export function redactedSource(url: string): string {
  const parsed = new URL(url);
  if (parsed.searchParams.has('sig')) parsed.searchParams.set('sig', 'REDACTED');
  return parsed.href;
}
