// Building blocks of the report's Vega specifications: the common frame, scales, axes, marks and channel
// encodings, so that specs.ts says what each plot shows rather than repeating Vega's JSON shapes. Each helper
// returns the same plain JSON (same keys, same key order) that a hand-written spec would; nothing here knows
// about campaigns.

// Vega's spec type is large and loose; the specs here are plain JSON checked by vega.parse at render time.
export type VegaSpec = Record<string, unknown>;

/** The visual channels of one mark (x, y, fill, description…), as written under `encode.enter`. */
export type Channels = Record<string, unknown>;

/** The size, padding and fonts every plot of the page shares. */
export function frame(width: number, height: number): VegaSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    width,
    height,
    padding: 8,
    autosize: { type: 'pad' },
    config: {
      axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: '#eee' },
      legend: { labelFontSize: 11, titleFontSize: 12 },
    },
  };
}

/** A Vega expression printing `datum.<field>` with at most `digits` decimals (trailing zeros dropped). */
export const formatted = (field: string, digits = 4) => `format(datum.${field}, '.${digits}~f')`;

// ---- channel values

export const value = (v: unknown) => ({ value: v });
export const signal = (expr: string) => ({ signal: expr });
/** A data field through a scale; `extra` adds band, offset and the like after the field. */
export const scaled = (scale: string, field: string, extra: Record<string, unknown> = {}) => ({
  scale,
  field,
  ...extra,
});

/** An error bar's two ends on one scale (x, x2 or y, y2): `datum.<centre>` ∓ `datum.<se>`. */
export const plusMinus = (scale: 'x' | 'y', centre: string, se: string): Channels => ({
  [scale]: { scale, signal: `datum.${centre} - datum.${se}` },
  [`${scale}2`]: { scale, signal: `datum.${centre} + datum.${se}` },
});

/** The hover text of a mark: Vega writes `description` as the aria-label, which the page turns into a <title>. */
export const hoverText = (expr: string) => ({ description: signal(expr) });

/** x and y of a point from two data fields, through the scales named x and y. */
export const atXY = (xField: string, yField: string): Channels => ({
  x: scaled('x', xField),
  y: scaled('y', yField),
});

/** The middle of a band cell (x and y both band scales). */
export const atBandCentre = (xField: string, yField: string): Channels => ({
  x: scaled('x', xField, { band: 0.5 }),
  y: scaled('y', yField, { band: 0.5 }),
});

/** A whole band cell: position and size on both band scales. */
export const bandCell = (xField: string, yField: string): Channels => ({
  x: scaled('x', xField),
  width: { scale: 'x', band: 1 },
  y: scaled('y', yField),
  height: { scale: 'y', band: 1 },
});

/** Text centred on its position, the label inside a heatmap cell. */
export const centredText = (fontSize: number): Channels => ({
  align: value('center'),
  baseline: value('middle'),
  fontSize: value(fontSize),
});

// ---- scales and axes

type ScaleOptions = Record<string, unknown>;
/** `range` is 'width' or 'height' for position scales, a list or a scheme for colours. */
export const linearScale = (name: string, domain: unknown, range: unknown, options: ScaleOptions = {}) => ({
  name,
  type: 'linear',
  domain,
  range,
  ...options,
});
export const bandScale = (name: string, domain: unknown, range: 'width' | 'height', padding: number) => ({
  name,
  type: 'band',
  domain,
  range,
  padding,
});
export const ordinalScale = (name: string, domain: unknown, range: unknown) => ({
  name,
  type: 'ordinal',
  domain,
  range,
});
/** A domain read from one field of a named data set. */
export const dataDomain = (data: string, field: string) => ({ data, field });

export const axis = (
  orient: 'top' | 'bottom' | 'left' | 'right',
  scale: string,
  options: Record<string, unknown> = {},
) => ({
  orient,
  scale,
  ...options,
});
/** The x axis of the plots over generations: whole numbers, one tick at most per generation. */
export const generationAxis = (title: string) => axis('bottom', 'x', { title, format: 'd', tickMinStep: 1 });

// ---- marks

/** A mark drawn once per datum of `data`, its channels set when it enters (the page is static: no update). */
export const mark = (type: string, data: string, enter: Channels) => ({ type, from: { data }, encode: { enter } });

/**
 * One line per series (the rows of `data` grouped by `groupby`) with a hoverable dot on each point: the shape of
 * the plots over generations. Lines have no hover text (one title per line would say nothing); the dots do.
 */
export function linesWithDots(o: {
  data: string;
  groupby: string | string[];
  x: string;
  y: string;
  /** colour of line and dot: the scale and the field it reads */
  color: { scale: string; field: string };
  /** a stroke-dash scale telling series apart beyond their colour */
  dash?: { scale: string; field: string };
  strokeWidth: number;
  dotSize: number;
  hover: string;
}): object[] {
  const line: Channels = {
    ...atXY(o.x, o.y),
    stroke: scaled(o.color.scale, o.color.field),
    ...(o.dash ? { strokeDash: scaled(o.dash.scale, o.dash.field) } : {}),
    strokeWidth: value(o.strokeWidth),
  };
  return [
    {
      type: 'group',
      from: { facet: { name: 'series', data: o.data, groupby: o.groupby } },
      marks: [mark('line', 'series', line)],
    },
    mark('symbol', o.data, {
      ...atXY(o.x, o.y),
      size: value(o.dotSize),
      fill: scaled(o.color.scale, o.color.field),
      ...hoverText(o.hover),
    }),
  ];
}
