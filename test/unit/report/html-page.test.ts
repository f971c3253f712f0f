// The report page's method-gene section: which optimiser's campaign has method probabilities is restated in
// the report (it may not import search), so this checks the restatement against the optimisers themselves,
// and the sentences each case gets in place of the plot.
import { describe, expect, it } from 'vitest';
import type { HtmlReportData } from '../../../src/report/html/data.ts';
import { METHOD_DISTRIBUTION_OPTIMIZER, methodGeneBody, pageContext } from '../../../src/report/html/sections.ts';
import { createOptimizer } from '../../../src/search/optimizers/factory.ts';
import { optimizerKinds, type SearchDomain } from '../../../src/search/optimizers/optimizer.ts';

const domain: SearchDomain = {
  continuous: [{ name: 'weight', lower: 0, upper: 1 }],
  categorical: [{ name: 'method', choices: ['linear', 'ties'] }],
};

/** Just what the method-gene section reads; the rest of the page's data is not needed. */
function dataOf(optimizer: string): HtmlReportData {
  return {
    report: { campaign: { optimizer }, counts: { evaluated: 4, failed: 0 } },
    failures: [],
    methodProbabilities: [],
  } as unknown as HtmlReportData;
}

describe('the method gene section', () => {
  it('names the one optimiser whose saved state holds a distribution (θ) over the categorical genes', () => {
    for (const kind of optimizerKinds) {
      const opt = createOptimizer(kind, domain, { seed: 1, populationSize: 2 });
      const asked = [opt.ask(), opt.ask()];
      opt.tell(asked.map((solution, i) => ({ solution, value: i })));
      const state = JSON.parse(JSON.stringify(opt.state())) as { algorithm: { theta?: unknown } };
      expect(Array.isArray(state.algorithm.theta), kind).toBe(kind === METHOD_DISTRIBUTION_OPTIMIZER);
    }
  });

  it('says why there is no plot: another optimiser, or no generation told yet', async () => {
    expect(await methodGeneBody(pageContext(dataOf('random')))).toBe(
      '<p class="empty" data-plot="method-probabilities">The random optimizer draws the method without a learned ' +
        'distribution, so there are no method probabilities to show.</p>',
    );
    expect(await methodGeneBody(pageContext(dataOf(METHOD_DISTRIBUTION_OPTIMIZER)))).toBe(
      '<p class="empty" data-plot="method-probabilities">No generation has been completed yet, so no optimiser ' +
        'state with method probabilities is recorded.</p>',
    );
  });
});
