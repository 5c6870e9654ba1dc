/**
 * Merges hook maps (`Options['hooks']` of the Claude Agent SDK): for each event the matcher
 * lists are concatenated, in argument order. The SDK runs all hooks of an event concurrently,
 * so the order does not delay anything.
 *
 * ```ts
 * options: { hooks: mergeHooks(lightning.hooks, { PreToolUse: [{ matcher: 'Bash', hooks: [guard] }] }) }
 * ```
 */
export type HookMapLike<M> = { readonly [event: string]: readonly M[] | undefined };

type MatcherOf<H> = H extends HookMapLike<infer M> ? M : never;

export function mergeHooks<T extends readonly (HookMapLike<unknown> | undefined | null)[]>(
  ...maps: T
): { [event: string]: MatcherOf<NonNullable<T[number]>>[] } {
  const out: { [event: string]: unknown[] } = {};
  for (const map of maps) {
    if (!map) continue;
    for (const event of Object.keys(map)) {
      const matchers = map[event];
      if (!matchers || matchers.length === 0) continue;
      (out[event] ??= []).push(...matchers);
    }
  }
  return out as { [event: string]: MatcherOf<NonNullable<T[number]>>[] };
}
