// Request bodies at the edge: a data body streamed to the backend with its length and optional
// Content-MD5 or x-ms-content-crc64 enforced, and a bounded reader for XML documents.
//
// Invariants: a DataBody yields exactly `length` bytes in total or throws, and it holds back its
// last chunk until the whole body has arrived and its MD5 / CRC64 (if given) matched, so a backend that
// makes a write durable only after iteration completes never commits a short, long or corrupt
// body. Memory held is one chunk (plus the MD5 state); XML bodies are at most xmlBodyBytesMax.
// Fault model: clients send fewer or more bytes than Content-Length, stall (idle timeout
// destroys the socket), disconnect, or send bodies that do not match their Content-MD5.

import { createHash } from 'node:crypto';
import { Crc64 } from '../util/crc64.ts';
import type { IncomingMessage } from 'node:http';
import type { RequestBody } from './blob-backend.ts';
import { FrontendError } from './errors.ts';

function md5Mismatch(): FrontendError {
  return new FrontendError('Md5Mismatch', 'body does not match Content-MD5');
}

function clientGone(): FrontendError {
  return new FrontendError('InvalidInput', 'the request body ended before Content-Length bytes arrived');
}

export class DataBody implements RequestBody {
  readonly length: number;
  readonly #source: AsyncIterable<Uint8Array>;
  readonly #expectedMd5: Uint8Array | undefined;
  readonly #expectedCrc64: Uint8Array | undefined;
  #consumed = false;

  constructor(source: AsyncIterable<Uint8Array>, length: number, expectedMd5: Uint8Array | undefined, expectedCrc64?: Uint8Array) {
    this.#source = source;
    this.length = length;
    this.#expectedMd5 = expectedMd5;
    this.#expectedCrc64 = expectedCrc64;
  }

  get contentMd5(): Uint8Array | undefined {
    return this.#expectedMd5;
  }

  get consumed(): boolean {
    return this.#consumed;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.#consumed) throw new FrontendError('InternalError', 'a request body can be read once');
    this.#consumed = true;
    const hash = this.#expectedMd5 === undefined ? null : createHash('md5');
    const crc = this.#expectedCrc64 === undefined ? null : new Crc64();
    let received = 0;
    let held: Uint8Array | null = null;
    try {
      for await (const chunk of this.#source) {
        received += chunk.length;
        if (received > this.length) throw new FrontendError('InvalidInput', 'more body bytes than Content-Length');
        hash?.update(chunk);
        crc?.update(chunk);
        if (held !== null) yield held;
        held = chunk;
      }
    } catch (error) {
      if (error instanceof FrontendError) throw error;
      throw clientGone();
    }
    if (received !== this.length) throw clientGone();
    if (hash !== null && this.#expectedMd5 !== undefined && !hash.digest().equals(this.#expectedMd5)) throw md5Mismatch();
    if (crc !== null && this.#expectedCrc64 !== undefined && !crc.digest().equals(this.#expectedCrc64)) throw new FrontendError('Crc64Mismatch', 'body does not match x-ms-content-crc64');
    if (held !== null) yield held;
  }
}

/** Reads a whole XML body of `length` bytes (already checked against its limit). */
export async function readXmlBody(request: IncomingMessage, length: number, expectedMd5: Uint8Array | undefined): Promise<Uint8Array> {
  const buffer = Buffer.alloc(length);
  let offset = 0;
  const body = new DataBody(request, length, expectedMd5);
  for await (const chunk of body) {
    buffer.set(chunk, offset);
    offset += chunk.length;
  }
  return buffer;
}
