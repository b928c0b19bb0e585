// Invariant assertions (STYLE.md, errors rule 1). A failed assertion is a programmer error: it
// throws AssertionFailure, which no layer may catch and retry; the process entry point exits 70.

export class AssertionFailure extends Error {
  override readonly name = 'AssertionFailure';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (condition === false || condition === null || condition === undefined || condition === 0) {
    throw new AssertionFailure(message);
  }
}

/** Byte offsets and lengths are non-negative safe integers (STYLE.md, TypeScript). */
export function assertByteCount(value: number, what: string): void {
  assert(Number.isSafeInteger(value) && value >= 0, `${what} must be a non-negative safe integer, got ${value}`);
}

/** Exhaustiveness helper for discriminated unions. */
export function unreachable(value: never): never {
  throw new AssertionFailure(`unreachable: ${JSON.stringify(value)}`);
}
