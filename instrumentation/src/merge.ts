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

export function mergeHooks<M>(...maps: (HookMapLike<M> | undefined | null)[]): { [event: string]: M[] } {
  const out: { [event: string]: M[] } = {};
  for (const map of maps) {
    if (!map) continue;
    for (const event of Object.keys(map)) {
      const matchers = map[event];
      if (!matchers || matchers.length === 0) continue;
      (out[event] ??= []).push(...matchers);
    }
  }
  return out;
}
