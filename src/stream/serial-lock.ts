// Serial locks for the stream manager's control flow: one critical section at a time, per key
// or for the whole manager. A lock is a promise chain, so waiters run in arrival order (FIFO)
// and a failing section never blocks the ones behind it.
//
// Invariants: sections under one key never overlap; a key's entry is dropped when its chain is
// idle, so the map does not grow with the number of keys ever used.
// Fault model: none of its own; a section that never settles blocks its key (callers bound
// their network waits with deadlines, so sections always settle).

export class SerialLock {
  private tail: Promise<void> = Promise.resolve();

  async run<T>(section: () => Promise<T>): Promise<T> {
    const previous = this.tail;
    let release = (): void => undefined;
    this.tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    try {
      return await section();
    } finally {
      release();
    }
  }
}

export class KeyedLock<K> {
  private readonly chains = new Map<K, { tail: Promise<void>; waiters: number }>();

  async run<T>(key: K, section: () => Promise<T>): Promise<T> {
    const chain = this.chains.get(key) ?? { tail: Promise.resolve(), waiters: 0 };
    this.chains.set(key, chain);
    const previous = chain.tail;
    let release = (): void => undefined;
    chain.tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    chain.waiters += 1;
    await previous;
    try {
      return await section();
    } finally {
      chain.waiters -= 1;
      if (chain.waiters === 0) this.chains.delete(key);
      release();
    }
  }

  /** Keys with a section running or waiting (for tests and metrics). */
  get activeKeyCount(): number {
    return this.chains.size;
  }
}
