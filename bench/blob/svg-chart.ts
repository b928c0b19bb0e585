// A hand-written SVG bar chart of the blob benchmark (no chart dependency): one group per
// workload, one horizontal bar per peer, each group scaled to its own largest bar because the
// groups have different units. A bar's note carries the durability result ("lost 37/5000 after
// kill -9") so a reader of the README sees speed and safety side by side. Peers that could not
// run are listed under the legend with their reason instead of a bar.

export interface ChartBar {
  readonly peer: string;
  readonly value: number;
  readonly note: string;
}

export interface ChartGroup {
  readonly label: string;
  readonly unit: string;
  readonly bars: readonly ChartBar[];
}

export interface ChartInput {
  readonly title: string;
  readonly subtitle: string;
  readonly peers: readonly string[];
  readonly unavailable: readonly { readonly peer: string; readonly reason: string }[];
  readonly groups: readonly ChartGroup[];
}

const width = 1000;
const labelWidth = 250;
const barAreaWidth = 420;
const barHeight = 13;
const barGap = 3;
const groupGap = 14;
const palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

export function escapeSvgText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** 1234567 → "1.23M", 12345 → "12.3k", 12.345 → "12.3", 0.01234 → "0.0123". */
export function formatRate(value: number): string {
  if (!Number.isFinite(value)) return '—';
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toPrecision(3)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toPrecision(3)}k`;
  if (abs >= 100) return value.toFixed(0);
  return value.toPrecision(3);
}

export function peerColor(peers: readonly string[], peer: string): string {
  const index = peers.indexOf(peer);
  return palette[(index === -1 ? peers.length : index) % palette.length] ?? '#000000';
}

function legend(input: ChartInput, top: number): { svg: string; height: number } {
  const items = input.peers.map((peer, index) => {
    const x = 20 + (index % 4) * 240;
    const y = top + Math.floor(index / 4) * 18;
    return `<rect x="${x}" y="${y}" width="12" height="12" fill="${peerColor(input.peers, peer)}"/><text x="${x + 18}" y="${y + 10}">${escapeSvgText(peer)}</text>`;
  });
  let height = Math.ceil(input.peers.length / 4) * 18;
  for (const { peer, reason } of input.unavailable) {
    items.push(`<text x="20" y="${top + height + 10}" class="note">${escapeSvgText(`${peer}: not available in this build (${reason})`)}</text>`);
    height += 16;
  }
  return { svg: items.join(''), height: height + 8 };
}

function group(input: ChartInput, chartGroup: ChartGroup, top: number): { svg: string; height: number } {
  const max = Math.max(0, ...chartGroup.bars.map((bar) => (Number.isFinite(bar.value) ? bar.value : 0)));
  const parts = [`<text x="20" y="${top + 11}" class="group">${escapeSvgText(chartGroup.label)}</text><text x="20" y="${top + 25}" class="note">${escapeSvgText(chartGroup.unit)}</text>`];
  chartGroup.bars.forEach((bar, index) => {
    const y = top + index * (barHeight + barGap);
    const length = max > 0 && Number.isFinite(bar.value) ? Math.max(1, (bar.value / max) * barAreaWidth) : 0;
    parts.push(
      `<rect x="${labelWidth}" y="${y}" width="${length.toFixed(1)}" height="${barHeight}" fill="${peerColor(input.peers, bar.peer)}"><title>${escapeSvgText(`${bar.peer}: ${formatRate(bar.value)} ${chartGroup.unit}`)}</title></rect>`,
      `<text x="${(labelWidth + length + 4).toFixed(1)}" y="${y + 10}">${escapeSvgText(formatRate(bar.value))}${bar.note === '' ? '' : ` <tspan class="loss">${escapeSvgText(bar.note)}</tspan>`}</text>`,
    );
  });
  const height = Math.max(30, chartGroup.bars.length * (barHeight + barGap)) + groupGap;
  return { svg: parts.join(''), height };
}

export function renderBarChart(input: ChartInput): string {
  const parts: string[] = [
    `<text x="20" y="24" class="title">${escapeSvgText(input.title)}</text>`,
    `<text x="20" y="42" class="note">${escapeSvgText(input.subtitle)}</text>`,
  ];
  let y = 56;
  const legendPart = legend(input, y);
  parts.push(legendPart.svg);
  y += legendPart.height + 6;
  for (const chartGroup of input.groups) {
    const groupPart = group(input, chartGroup, y);
    parts.push(groupPart.svg);
    y += groupPart.height;
  }
  const style = '<style>text{font:11px sans-serif;fill:#222}.title{font-size:16px;font-weight:bold}.group{font-weight:bold}.note{fill:#666}.loss{fill:#c00;font-weight:bold}</style>';
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" viewBox="0 0 ${width} ${y + 10}">${style}<rect width="100%" height="100%" fill="#fff"/>${parts.join('')}</svg>\n`;
}
