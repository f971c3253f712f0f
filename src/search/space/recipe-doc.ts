// What a candidate is, as a document: a mergekit recipe, or a data-flow path through two models' layers. The
// document itself is what is hashed (genome.ts contentHash), stored as YAML and sent to queue workers; the two
// kinds are told apart by their top key (`data_flow`), so typing them changes no byte of any of these.

/** A mergekit recipe as a plain YAML document (what recipe/parse.ts accepts). */
export interface MergeRecipeDoc {
  merge_method: string;
  data_flow?: never;
  [key: string]: unknown;
}

/** One step of a path: layer `layer` of model `model` (0 = A, 1 = B), its input hidden state times `scale`. */
export interface PathStep {
  readonly model: number;
  readonly layer: number;
  readonly scale: number;
}

/** A data-flow candidate (search/space/data-flow.ts): the model folders, A first, and the path through them. */
export interface DataFlowDoc {
  readonly data_flow: { readonly models: readonly string[]; readonly path: readonly PathStep[] };
  readonly merge_method?: never;
}

/** A candidate's document: a merge recipe or a data-flow path (`isDataFlowDoc` tells which). */
export type RecipeDoc = MergeRecipeDoc | DataFlowDoc;

/** Whether a candidate's document is a data-flow path rather than a mergekit recipe. */
export function isDataFlowDoc(doc: RecipeDoc): doc is DataFlowDoc {
  return doc !== null && typeof doc === 'object' && 'data_flow' in doc;
}
