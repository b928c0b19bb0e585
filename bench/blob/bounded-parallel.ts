// Runs `count` tasks with at most `concurrency` in flight: for untimed setup (writing the
// blobs a get loop reads) and for the blocks of one large upload. Stops at the first failure.
export async function forEachBounded(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** Zero-padded sequence numbers keep blob names in listing order. */
export function sequenceName(prefix: string, sequence: number): string {
  return `${prefix}/${String(sequence).padStart(8, '0')}`;
}
