// CORS for the Blob service, after Azure's rules: the account's service properties hold up to
// five rules; a preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered
// from the first rule that matches origin, method and every requested header, or refused with
// 403 CorsPreflightFailure; an actual request with an Origin that a rule matches gets
// Access-Control-Allow-Origin and Access-Control-Expose-Headers.
//
// Invariants: preflight never reaches the backend and changes nothing; matching is
// case-insensitive for origins and headers, exact for methods; "*" and "x-ms-meta-*" style
// prefixes work as in Azure. Fault model: Origin and Access-Control-* headers are hostile
// (bounded by the header limits; lists split at most corsRuleItemsMax times).

import { corsRuleItemsMax } from '../constants.ts';
import { FrontendError, missingHeader } from './errors.ts';
import type { CorsRule } from './model.ts';

export type CorsRulesLookup = (account: string) => Promise<readonly CorsRule[]>;

function matchesItem(allowed: readonly string[], value: string): boolean {
  const lower = value.toLowerCase();
  return allowed.some((item) => {
    const rule = item.toLowerCase();
    if (rule === '*') return true;
    return rule.endsWith('*') ? lower.startsWith(rule.slice(0, -1)) : lower === rule;
  });
}

export function findCorsRule(rules: readonly CorsRule[], origin: string, method: string, requestHeaders: readonly string[]): CorsRule | null {
  for (const rule of rules) {
    if (!matchesItem(rule.allowedOrigins, origin)) continue;
    if (!rule.allowedMethods.includes(method)) continue;
    if (requestHeaders.some((header) => !matchesItem(rule.allowedHeaders, header))) continue;
    return rule;
  }
  return null;
}

function splitList(raw: string | undefined): string[] {
  if (raw === undefined || raw.trim() === '') return [];
  const items = raw.split(',', corsRuleItemsMax + 1).map((item) => item.trim()).filter((item) => item !== '');
  if (items.length > corsRuleItemsMax) throw new FrontendError('InvalidHeaderValue', 'too many requested headers', [['HeaderName', 'Access-Control-Request-Headers']]);
  return items;
}

/** The response headers of a successful preflight, or a FrontendError. */
export function preflightHeaders(rules: readonly CorsRule[], headers: ReadonlyMap<string, string>): Record<string, string> {
  const origin = headers.get('origin');
  if (origin === undefined) throw missingHeader('Origin');
  const method = headers.get('access-control-request-method');
  if (method === undefined) throw missingHeader('Access-Control-Request-Method');
  const requested = splitList(headers.get('access-control-request-headers'));
  const rule = findCorsRule(rules, origin, method, requested);
  if (rule === null) throw new FrontendError('CorsPreflightFailure', 'no CORS rule matches');
  return {
    'access-control-allow-origin': rule.allowedOrigins.includes('*') ? '*' : origin,
    'access-control-allow-methods': method,
    ...(requested.length === 0 ? {} : { 'access-control-allow-headers': requested.join(',') }),
    'access-control-max-age': String(rule.maxAgeInSeconds),
    'access-control-allow-credentials': 'true',
    vary: 'Origin',
  };
}

/** Headers added to an actual (non-preflight) response when its Origin matches a rule. */
export function actualRequestHeaders(rules: readonly CorsRule[], origin: string | undefined, method: string): Record<string, string> {
  if (origin === undefined) return {};
  const rule = findCorsRule(rules, origin, method, []);
  if (rule === null) return {};
  return {
    'access-control-allow-origin': rule.allowedOrigins.includes('*') ? '*' : origin,
    ...(rule.exposedHeaders.length === 0 ? {} : { 'access-control-expose-headers': rule.exposedHeaders.join(',') }),
    ...(rule.allowedOrigins.includes('*') ? {} : { 'access-control-allow-credentials': 'true' }),
    vary: 'Origin',
  };
}
