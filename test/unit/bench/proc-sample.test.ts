// /proc parsing of the blob benchmark's server sampling, on synthetic lines and on the test
// process's own /proc files.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { clockTicksPerSecond, parseProcStatCpuSeconds, parseProcStatusBytes, ProcessSampler, readProcessSample, readThreadCpu, threadCpuDelta } from '../../../bench/blob/proc-sample.ts';

describe('/proc sampling', () => {
  it('reads utime + stime after a comm that contains spaces and parentheses', () => {
    const line = '1234 (node (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 11 0 100 1000 200 18446744073709551615';
    assert.equal(parseProcStatCpuSeconds(line, 100), 3);
    assert.throws(() => parseProcStatCpuSeconds('garbage', 100));
  });

  it('reads VmRSS and VmHWM in bytes, null when absent', () => {
    const status = 'Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n';
    assert.equal(parseProcStatusBytes(status, 'VmRSS'), 102400 * 1024);
    assert.equal(parseProcStatusBytes(status, 'VmHWM'), 204800 * 1024);
    assert.equal(parseProcStatusBytes('Name:\tkthreadd\n', 'VmRSS'), null);
  });

  it('parses the test process itself consistently with process.cpuUsage and memoryUsage', () => {
    const ticks = clockTicksPerSecond();
    assert.ok(Number.isInteger(ticks) && ticks > 0);
    let spin = 0;
    for (let i = 0; i < 5_000_000; i++) spin += i % 7;
    assert.ok(spin > 0);
    const own = parseProcStatCpuSeconds(readFileSync('/proc/self/stat', 'utf8'), ticks);
    const usage = process.cpuUsage();
    const reported = (usage.user + usage.system) / 1e6;
    assert.ok(own > 0 && Math.abs(own - reported) < 0.5, `proc ${own} s vs cpuUsage ${reported} s`);
    const sample = readProcessSample(process.pid);
    const rss = process.memoryUsage.rss();
    assert.ok(sample.rssBytes > rss / 2 && sample.rssBytes < rss * 2, `proc rss ${sample.rssBytes} vs ${rss}`);
    assert.ok(sample.peakRssBytes >= sample.rssBytes);
  });

  it('keeps the peak resident size and the CPU used between start and stop', async () => {
    const sampler = new ProcessSampler({ read: () => readProcessSample(process.pid), intervalMs: 5 });
    const hold = Buffer.alloc(64 << 20, 1);
    await new Promise((resolve) => setTimeout(resolve, 30));
    const { cpuSeconds, peakRssBytes } = sampler.stop();
    assert.ok(hold.length > 0);
    assert.ok(cpuSeconds >= 0);
    assert.ok(peakRssBytes >= 64 << 20, `peak ${peakRssBytes}`);
  });

  it("groups the test process's threads by name; their CPU sums to the process's", () => {
    let spin = 0;
    for (let i = 0; i < 5_000_000; i++) spin += i % 7;
    assert.ok(spin > 0);
    const before = readThreadCpu(process.pid);
    for (let i = 0; i < 5_000_000; i++) spin += i % 7;
    const after = readThreadCpu(process.pid);
    const main = after.get('MainThread') ?? after.get('node');
    assert.ok(main !== undefined && main.threads === 1, `thread names: ${[...after.keys()].join(', ')}`);
    const total = [...after.values()].reduce((sum, group) => sum + group.userSeconds + group.systemSeconds, 0);
    const own = parseProcStatCpuSeconds(readFileSync('/proc/self/stat', 'utf8'), clockTicksPerSecond());
    assert.ok(Math.abs(total - own) < 0.2, `threads ${total} s vs process ${own} s`);
    const delta = threadCpuDelta(before, after);
    for (const group of delta.values()) assert.ok(group.userSeconds >= 0 && group.systemSeconds >= 0);
  });
});
