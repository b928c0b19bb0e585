// Blob index tag predicates: x-ms-if-tags on a single blob and the `where` of Find Blobs by Tags,
// in Azure's SQL-like form: "key" op 'value' joined by AND / OR with parentheses, op one of
// = <> > >= < <=, keys double-quoted (or bare), values single-quoted ('' escapes a quote), and
// @container = 'name' to scope Find Blobs. Parsed once into a tree, evaluated per blob. Pure.
//
// Invariants: comparison is on strings (Azure compares tag values lexically); a key that is
// absent compares as not satisfying any operator but <>; a predicate deeper than 16 levels or
// with more than 64 terms is refused (the text is already bounded to 4 KiB at the edge).
// Fault model: the text is client input; anything that does not parse is a typed error.

import { FrontendError, type FrontendErrorCode } from '../errors.ts';
import type { BlobTag } from '../model.ts';

type Operator = '=' | '<>' | '>' | '>=' | '<' | '<=';

export type TagPredicate =
  | { readonly kind: 'compare'; readonly key: string; readonly op: Operator; readonly value: string }
  | { readonly kind: 'and' | 'or'; readonly left: TagPredicate; readonly right: TagPredicate };

const termsMax = 64;
const depthMax = 16;

interface Token { readonly kind: 'key' | 'value' | 'op' | 'word' | 'open' | 'close'; readonly text: string }

function tokenize(text: string, error: () => FrontendError): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  while (at < text.length) {
    const char = text.charAt(at);
    if (char === ' ' || char === '\t') { at += 1; continue; }
    if (char === '(' || char === ')') { tokens.push({ kind: char === '(' ? 'open' : 'close', text: char }); at += 1; continue; }
    if (char === '"' || char === '\'') {
      const [value, next] = quoted(text, at, char, error);
      tokens.push({ kind: char === '"' ? 'key' : 'value', text: value });
      at = next;
      continue;
    }
    const op = /^(<>|>=|<=|=|>|<)/.exec(text.slice(at));
    if (op !== null) { tokens.push({ kind: 'op', text: op[0] }); at += op[0].length; continue; }
    const word = /^[@A-Za-z0-9_.:/+-]+/.exec(text.slice(at));
    if (word === null) throw error();
    tokens.push({ kind: 'word', text: word[0] });
    at += word[0].length;
  }
  return tokens;
}

function quoted(text: string, start: number, quote: string, error: () => FrontendError): [string, number] {
  let value = '';
  for (let at = start + 1; at < text.length; at++) {
    const char = text.charAt(at);
    if (char !== quote) { value += char; continue; }
    if (text.charAt(at + 1) === quote) { value += quote; at += 1; continue; }
    return [value, at + 1];
  }
  throw error();
}

class Parser {
  readonly #tokens: Token[];
  readonly #error: () => FrontendError;
  #at = 0;
  #terms = 0;

  constructor(tokens: Token[], error: () => FrontendError) {
    this.#tokens = tokens;
    this.#error = error;
  }

  parse(): TagPredicate {
    const tree = this.or(0);
    if (this.#at !== this.#tokens.length) throw this.#error();
    return tree;
  }

  private or(depth: number): TagPredicate {
    let left = this.and(depth);
    while (this.word('OR')) left = { kind: 'or', left, right: this.and(depth) };
    return left;
  }

  private and(depth: number): TagPredicate {
    let left = this.term(depth);
    while (this.word('AND')) left = { kind: 'and', left, right: this.term(depth) };
    return left;
  }

  private term(depth: number): TagPredicate {
    if (depth > depthMax || ++this.#terms > termsMax) throw this.#error();
    const token = this.#tokens[this.#at];
    if (token?.kind === 'open') {
      this.#at += 1;
      const inner = this.or(depth + 1);
      if (this.#tokens[this.#at]?.kind !== 'close') throw this.#error();
      this.#at += 1;
      return inner;
    }
    const op = this.#tokens[this.#at + 1];
    const value = this.#tokens[this.#at + 2];
    if (token === undefined || (token.kind !== 'key' && token.kind !== 'word') || op?.kind !== 'op' || value?.kind !== 'value') throw this.#error();
    this.#at += 3;
    return { kind: 'compare', key: token.text, op: op.text as Operator, value: value.text };
  }

  private word(upper: string): boolean {
    const token = this.#tokens[this.#at];
    if (token?.kind !== 'word' || token.text.toUpperCase() !== upper) return false;
    this.#at += 1;
    return true;
  }
}

export function parseTagPredicate(text: string, code: FrontendErrorCode = 'InvalidHeaderValue'): TagPredicate {
  const error = (): FrontendError => new FrontendError(code, 'the tag predicate does not parse', code === 'InvalidHeaderValue' ? [['HeaderName', 'x-ms-if-tags']] : [['QueryParameterName', 'where']]);
  return new Parser(tokenize(text, error), error).parse();
}

function compare(op: Operator, actual: string | undefined, expected: string): boolean {
  if (actual === undefined) return op === '<>';
  switch (op) {
    case '=': return actual === expected;
    case '<>': return actual !== expected;
    case '>': return actual > expected;
    case '>=': return actual >= expected;
    case '<': return actual < expected;
    case '<=': return actual <= expected;
  }
}

/** Evaluates against a blob's tags; `@container` compares with `container` when given. */
export function evaluateTagPredicate(predicate: TagPredicate, tags: readonly BlobTag[], container?: string): boolean {
  switch (predicate.kind) {
    case 'and': return evaluateTagPredicate(predicate.left, tags, container) && evaluateTagPredicate(predicate.right, tags, container);
    case 'or': return evaluateTagPredicate(predicate.left, tags, container) || evaluateTagPredicate(predicate.right, tags, container);
    case 'compare': {
      if (predicate.key === '@container') return container === undefined || compare(predicate.op, container, predicate.value);
      return compare(predicate.op, tags.find((tag) => tag.key === predicate.key)?.value, predicate.value);
    }
  }
}

/** The container a Find Blobs predicate pins with @container = 'name' at its top AND level. */
export function pinnedContainer(predicate: TagPredicate): string | null {
  if (predicate.kind === 'compare') return predicate.key === '@container' && predicate.op === '=' ? predicate.value : null;
  if (predicate.kind === 'or') return null;
  return pinnedContainer(predicate.left) ?? pinnedContainer(predicate.right);
}
