// Vega spec → inline SVG for the report page, rendered on the server (no script in the page). Also turns each
// data mark's aria-label into an SVG <title>, which browsers show on hover without JavaScript.
import type * as Vega from 'vega';
import type { VegaSpec } from './vega-spec.ts';

/** Vega's SVG with every data mark's aria-label (its `description`) also as a <title>: hover text without JavaScript. */
export async function svgOf(spec: VegaSpec): Promise<string> {
  // loaded on first use: vega takes about a second to import, which every other command would pay at start-up
  const vega = await import('vega');
  const view = new vega.View(vega.parse(spec as Vega.Spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return (
      svg
        // sub-pixel digits past the first add bytes, not sharpness (thousands of marks in a long campaign)
        .replace(
          /translate\((-?[\d.]+),(-?[\d.]+)\)/g,
          (_, x: string, y: string) =>
            `translate(${Math.round(Number(x) * 10) / 10},${Math.round(Number(y) * 10) / 10})`,
        )
        .replace(
          /<(path|rect|line|circle|text)((?:\s+[\w:-]+="[^"]*")*?\s+aria-label="([^"]*)"(?:\s+[\w:-]+="[^"]*")*)\s*\/>/g,
          '<$1$2><title>$3</title></$1>',
        )
    );
  } finally {
    view.finalize();
  }
}
