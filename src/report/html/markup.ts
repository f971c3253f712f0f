// The HTML pieces the report page is made of: escaping, a plot figure with its caption, the sentence that
// stands in for an empty plot, a titled section, a table. Strings in, strings out; no campaign knowledge.
import { svgOf } from './svg.ts';
import type { VegaSpec } from './vega-spec.ts';

/** Text made safe for HTML element content and double-quoted attributes. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A score with three decimals; '—' where there is none (null, undefined, NaN, ±∞). */
export const f3 = (v: number | null | undefined) =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(3);

/** A rendered plot and its caption; `name` (data-plot) lets tests and readers find it. */
export async function figure(name: string, spec: VegaSpec, caption: string): Promise<string> {
  return `<figure class="plot" data-plot="${esc(name)}">${await svgOf(spec)}<figcaption>${esc(caption)}</figcaption></figure>`;
}

/** The sentence saying why the plot `name` is not drawn, in the plot's place. */
export function empty(name: string, sentence: string): string {
  return `<p class="empty" data-plot="${esc(name)}">${esc(sentence)}</p>`;
}

export function section(title: string, body: string): string {
  return `<section><h2>${esc(title)}</h2>${body}</section>`;
}

/** A table of plain-text cells (escaped here). */
export function table(header: string[], rows: string[][]): string {
  return (
    `<table><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}` +
    `</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}` +
    `</tbody></table>`
  );
}
