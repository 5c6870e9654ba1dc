// Measurements of the virtualized step list shared by the e2e test and the benchmark.

/**
 * Scroll the step list to `fraction` of its height, then expand the mounted row closest above the
 * viewport (by a DOM click, which does not scroll) so that a row above the viewport is
 * re-measured taller. Returns how far the first visible row moved on screen, in px (0: no jump),
 * together with the rows involved and the height the expanded row grew by.
 */
export async function reanchorJump(page, { fraction = 0.5 } = {}) {
  return page.evaluate(
    async (fraction) => {
      const wait = (n) => new Promise((r) => {
        let k = n;
        const f = () => (--k <= 0 ? r() : requestAnimationFrame(f));
        requestAnimationFrame(f);
      });
      const el = document.querySelector('.step-list');
      if (!el) throw new Error('no .step-list on the page');
      el.scrollTop = Math.round((el.scrollHeight - el.clientHeight) * fraction);
      await wait(4);
      const top = () => el.getBoundingClientRect().top;
      const rows = () => [...el.querySelectorAll('[role="listitem"]')].sort((a, b) => Number(a.dataset.index) - Number(b.dataset.index));
      const firstVisible = rows().find((r) => r.getBoundingClientRect().bottom > top() + 1);
      if (!firstVisible) throw new Error('no visible row');
      const anchorIndex = Number(firstVisible.dataset.index);
      const above = rows().filter((r) => r.getBoundingClientRect().bottom <= top()).pop();
      if (!above) throw new Error('no mounted row above the viewport');
      const expandedIndex = Number(above.dataset.index);
      const before = firstVisible.getBoundingClientRect().top - top();
      const heightBefore = above.getBoundingClientRect().height;
      above.querySelector('button.step-head').click();
      await wait(6);
      const anchor = el.querySelector(`[role="listitem"][data-index="${anchorIndex}"]`);
      if (!anchor) throw new Error(`row ${anchorIndex} was unmounted`);
      const after = anchor.getBoundingClientRect().top - top();
      const grown = el.querySelector(`[role="listitem"][data-index="${expandedIndex}"]`);
      return {
        moved: after - before,
        anchorIndex,
        expandedIndex,
        grewBy: (grown?.getBoundingClientRect().height ?? heightBefore) - heightBefore,
      };
    },
    fraction,
  );
}

/** Scroll the step list from top to bottom in `jumps` steps, one frame each; total ms. */
export async function longScroll(page, jumps = 40) {
  return page.evaluate(async (jumps) => {
    const el = document.querySelector('.step-list');
    const a = performance.now();
    for (let i = 0; i <= jumps; i++) {
      el.scrollTop = (el.scrollHeight * i) / jumps;
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r())));
    }
    return performance.now() - a;
  }, jumps);
}
