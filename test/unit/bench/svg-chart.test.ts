// The hand-written SVG chart: well-formed XML, one bar per peer and workload, text escaped,
// unavailable peers named with their reason, durability notes shown.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { XMLValidator } from 'fast-xml-parser';
import { escapeSvgText, formatRate, renderBarChart } from '../../../bench/blob/svg-chart.ts';

describe('blob benchmark SVG chart', () => {
  const svg = renderBarChart({
    title: 'Kura <blob> & friends',
    subtitle: 'quick',
    peers: ['azurite-disk', 'null-server'],
    unavailable: [{ peer: 'kura-1disk', reason: "error: unknown option '--disk'" }],
    groups: [
      { label: 'put 4 KiB ×16', unit: 'ops/s', bars: [{ peer: 'azurite-disk', value: 150, note: 'lost 146/146 after kill -9' }, { peer: 'null-server', value: 600, note: '' }] },
      { label: 'list 10000 blobs', unit: 'blobs/s', bars: [{ peer: 'azurite-disk', value: 0, note: '' }, { peer: 'null-server', value: Number.NaN, note: '' }] },
    ],
  });

  it('is well-formed XML with a root svg element', () => {
    assert.equal(XMLValidator.validate(svg), true);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  });

  it('draws one bar per peer and workload, the longest bar of a group at full width', () => {
    assert.equal((svg.match(/<rect x="250"/g) ?? []).length, 4);
    assert.match(svg, /<rect x="250" y="\d+" width="420\.0"/);
    assert.match(svg, /<rect x="250" y="\d+" width="105\.0"/);
  });

  it('escapes text, names unavailable peers and shows durability notes', () => {
    assert.match(svg, /Kura &lt;blob&gt; &amp; friends/);
    assert.match(svg, /kura-1disk: not available in this build \(error: unknown option '--disk'\)/);
    assert.match(svg, /lost 146\/146 after kill -9/);
    assert.equal(escapeSvgText('"a"<b>&'), '&quot;a&quot;&lt;b&gt;&amp;');
  });

  it('formats rates compactly', () => {
    assert.equal(formatRate(1_234_567), '1.23M');
    assert.equal(formatRate(12_345), '12.3k');
    assert.equal(formatRate(1234), '1234');
    assert.equal(formatRate(12.345), '12.3');
    assert.equal(formatRate(0.012345), '0.0123');
    assert.equal(formatRate(Number.NaN), '—');
  });
});
