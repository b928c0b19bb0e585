// Blob index tag predicates: x-ms-if-tags on a single blob and the `where` of Find Blobs by Tags,
// in Azure's SQL-like form: "key" op 'value' joined by AND / OR with parentheses, op one of
// = <> > >= < <=, keys double-quoted (or bare), values single-quoted ('' escapes a quote), and
// @container = 'name' to scope Find Blobs. Parsed once into a tree, evaluated per blob. Pure.
// Find Blobs by Tags accepts Azure's smaller grammar (parseFindExpression): terms joined by AND
// only, operators = > >= < <= (no OR, no <>), at most 10 distinct tag keys (@container aside),
// keys of 1-128 and values of 0-256 characters from Azure's tag alphabet (letters, digits, space
// and + - . / : = _); a refusal is 400 InvalidQueryParameterValue with Azure's "Error parsing
// query at or near character position N: …" as its Reason.
//
// Invariants: comparison is on strings (Azure compares tag values lexically); a key that is
// absent compares as not satisfying any operator but <>; a predicate deeper than 16 levels or
// with more than 64 terms is refused (the text is already bounded to 4 KiB at the edge).
// Fault model: the text is client input; anything that does not parse is a typed error.

import { blobTagKeyLengthMax, blobTagsMax, blobTagValueLengthMax } from '../../constants.ts';
import { assert } from '../../util/assert.ts';
import { FrontendError, type FrontendErrorCode } from '../errors.ts';
import type { BlobTag } from '../model.ts';

type Operator = '=' | '<>' | '>' | '>=' | '<' | '<=';

export type TagPredicate =
  | { readonly kind: 'compare'; readonly key: string; readonly op: Operator; readonly value: string }
  | { readonly kind: 'and' | 'or'; readonly left: TagPredicate; readonly right: TagPredicate };

const termsMax = 64;
const depthMax = 16;

/** `at`: the token's 1-based character position (Azure's error messages count from 1). */
interface Token { readonly kind: 'key' | 'value' | 'op' | 'word' | 'open' | 'close'; readonly text: string; readonly at: number }

type ParseError = (at: number, message: string) => FrontendError;

function tokenize(text: string, error: ParseError): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  while (at < text.length) {
    const char = text.charAt(at);
    if (char === ' ' || char === '\t') { at += 1; continue; }
    if (char === '(' || char === ')') { tokens.push({ kind: char === '(' ? 'open' : 'close', text: char, at: at + 1 }); at += 1; continue; }
    if (char === '"' || char === '\'') {
      const [value, next] = quoted(text, at, char, error);
      tokens.push({ kind: char === '"' ? 'key' : 'value', text: value, at: at + 1 });
      at = next;
      continue;
    }
    const op = /^(<>|>=|<=|=|>|<)/.exec(text.slice(at));
    if (op !== null) { tokens.push({ kind: 'op', text: op[0], at: at + 1 }); at += op[0].length; continue; }
    const word = /^[@A-Za-z0-9_.:/+-]+/.exec(text.slice(at));
    if (word === null) throw error(at + 1, `unexpected character '${char}'`);
    tokens.push({ kind: 'word', text: word[0], at: at + 1 });
    at += word[0].length;
  }
  return tokens;
}

function quoted(text: string, start: number, quote: string, error: ParseError): [string, number] {
  let value = '';
  for (let at = start + 1; at < text.length; at++) {
    const char = text.charAt(at);
    if (char !== quote) { value += char; continue; }
    if (text.charAt(at + 1) === quote) { value += quote; at += 1; continue; }
    return [value, at + 1];
  }
  throw error(start + 1, 'unterminated quoted string');
}

class Parser {
  readonly #tokens: Token[];
  readonly #error: ParseError;
  readonly #find: boolean;
  readonly #end: number;
  #at = 0;
  #terms = 0;

  constructor(tokens: Token[], options: { readonly error: ParseError; readonly find: boolean; readonly end: number }) {
    this.#tokens = tokens;
    this.#error = options.error;
    this.#find = options.find;
    this.#end = options.end;
  }

  parse(): TagPredicate {
    const tree = this.or(0);
    if (this.#at !== this.#tokens.length) throw this.#error(this.#position(), 'expected AND or the end of the expression');
    return tree;
  }

  #position(): number {
    return this.#tokens[this.#at]?.at ?? this.#end;
  }

  private or(depth: number): TagPredicate {
    let left = this.and(depth);
    while (this.word('OR')) {
      if (this.#find) throw this.#error(this.#tokens[this.#at - 1]?.at ?? this.#end, 'unsupported operator OR');
      left = { kind: 'or', left, right: this.and(depth) };
    }
    return left;
  }

  private and(depth: number): TagPredicate {
    let left = this.term(depth);
    while (this.word('AND')) left = { kind: 'and', left, right: this.term(depth) };
    return left;
  }

  private term(depth: number): TagPredicate {
    if (depth > depthMax || ++this.#terms > termsMax) throw this.#error(this.#position(), 'the expression is too complex');
    const token = this.#tokens[this.#at];
    if (token?.kind === 'open') {
      this.#at += 1;
      const inner = this.or(depth + 1);
      if (this.#tokens[this.#at]?.kind !== 'close') throw this.#error(this.#position(), 'expected )');
      this.#at += 1;
      return inner;
    }
    if (token === undefined || (token.kind !== 'key' && token.kind !== 'word')) throw this.#error(this.#position(), 'expected an identifier');
    const op = this.#tokens[this.#at + 1];
    if (op?.kind !== 'op') throw this.#error(op?.at ?? this.#end, 'expected an operator');
    const value = this.#tokens[this.#at + 2];
    if (value?.kind !== 'value') throw this.#error(value?.at ?? this.#end, 'expected a quoted value');
    this.#at += 3;
    if (this.#find) checkFindTerm(token, op, value, this.#error);
    return { kind: 'compare', key: token.text, op: op.text as Operator, value: value.text };
  }

  private word(upper: string): boolean {
    const token = this.#tokens[this.#at];
    if (token?.kind !== 'word' || token.text.toUpperCase() !== upper) return false;
    this.#at += 1;
    return true;
  }
}

const tagAlphabet = /^[A-Za-z0-9 +\-./:=_]*$/;

/** Azure's rules for one Find Blobs term: no <>, @container only with =, the tag alphabet and lengths. */
function checkFindTerm(key: Token, op: Token, value: Token, error: ParseError): void {
  if (op.text === '<>') throw error(op.at, 'unsupported operator <>');
  if (key.text.startsWith('@')) {
    if (key.text !== '@container') throw error(key.at, `unsupported parameter '${key.text}'`);
    if (op.text !== '=') throw error(op.at, '@container supports only =');
    return;
  }
  if (key.text.length < 1 || key.text.length > blobTagKeyLengthMax) throw error(key.at, 'tag must be between 1 and 128 characters in length');
  if (value.text.length > blobTagValueLengthMax) throw error(value.at, 'tag value must be between 0 and 256 characters in length');
  if (!tagAlphabet.test(key.text) || !tagAlphabet.test(value.text)) throw error(key.at, 'a character not permitted in tag name or value');
}

/** x-ms-if-tags (and, with `code`, any other predicate): Azure's full grammar. */
export function parseTagPredicate(text: string, code: FrontendErrorCode = 'InvalidHeaderValue'): TagPredicate {
  const error: ParseError = (at, message) => new FrontendError(code, `Error parsing query at or near character position ${at}: ${message}`, code === 'InvalidHeaderValue'
    ? [['HeaderName', 'x-ms-if-tags'], ['HeaderValue', text]]
    : [['QueryParameterName', 'where'], ['QueryParameterValue', text], ['Reason', `Error parsing query at or near character position ${at}: ${message}`]]);
  return new Parser(tokenize(text, error), { error, find: false, end: text.length + 1 }).parse();
}

/** A Find Blobs by Tags expression: its AND-ed terms, the container it pins, its distinct tag keys. */
export interface FindExpression {
  readonly predicate: TagPredicate;
  readonly terms: readonly Extract<TagPredicate, { kind: 'compare' }>[];
  readonly container: string | null;
  readonly keys: readonly string[];
}

/** The `where` of Find Blobs by Tags, in Azure's smaller grammar (see the file comment). */
export function parseFindExpression(text: string): FindExpression {
  const reason = (message: string): FrontendError => new FrontendError('InvalidQueryParameterValue', message, [['QueryParameterName', 'where'], ['QueryParameterValue', text], ['Reason', message]]);
  const error: ParseError = (at, message) => reason(`Error parsing query at or near character position ${at}: ${message}`);
  const predicate = new Parser(tokenize(text, error), { error, find: true, end: text.length + 1 }).parse();
  const terms = conjuncts(predicate);
  const keys = [...new Set(terms.filter((term) => term.key !== '@container').map((term) => term.key))];
  if (keys.length > blobTagsMax) throw reason(`Error parsing query: there can be at most ${blobTagsMax} unique tags in a query`);
  const containers = new Set(terms.filter((term) => term.key === '@container').map((term) => term.value));
  if (containers.size > 1) throw reason('Error parsing query: @container can be given once');
  return { predicate, terms, container: [...containers][0] ?? null, keys };
}

function conjuncts(predicate: TagPredicate): Extract<TagPredicate, { kind: 'compare' }>[] {
  if (predicate.kind === 'compare') return [predicate];
  assert(predicate.kind === 'and', 'a Find Blobs expression has no OR');
  return [...conjuncts(predicate.left), ...conjuncts(predicate.right)];
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
