import { useCallback, useEffect, useImperativeHandle, useLayoutEffect, useMemo, useRef, useState, type KeyboardEvent, type ReactNode, type Ref } from 'react';

export interface VirtualListHandle {
  /** Scroll so that item `index` is visible. */
  scrollToIndex: (index: number, align?: 'start' | 'center' | 'nearest') => void;
  /** Scroll to item `index` and move keyboard focus to its `[data-focus-target]` element. */
  focusIndex: (index: number) => void;
}

export interface VirtualListProps {
  count: number;
  /** Height used for items that have not been measured yet. */
  estimateHeight: number;
  renderItem: (index: number) => ReactNode;
  itemKey: (index: number) => string | number;
  /** Extra pixels rendered above and below the viewport. */
  overscan?: number;
  className?: string;
  label: string;
  handleRef?: Ref<VirtualListHandle>;
  /** Viewport height to assume before layout is known (tests, first paint). */
  fallbackViewport?: number;
  /** Keep the view pinned to the bottom when items are appended and the user is already there. */
  followTail?: boolean;
}

/** Index of the last item whose offset is <= y (offsets is ascending, length count + 1). */
function findIndex(offsets: Float64Array, count: number, y: number): number {
  let lo = 0;
  let hi = count - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((offsets[mid] ?? 0) <= y) lo = mid;
    else hi = mid - 1;
  }
  return Math.max(0, lo);
}

/**
 * A windowed list for items of varying height: only items near the viewport are mounted; their
 * real heights are measured with a ResizeObserver and replace the estimate. When an item that
 * starts above the scroll position changes height, the scroll position moves by the same amount,
 * so the items in view stay where they are (measured by `npm run bench:virtual`). Up/Down/Home/End move
 * focus between items' focus targets even when the target item is not mounted yet.
 */
export function VirtualList({
  count,
  estimateHeight,
  renderItem,
  itemKey,
  overscan = 600,
  className,
  label,
  handleRef,
  fallbackViewport = 600,
  followTail = false,
}: VirtualListProps) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const heights = useRef<Map<string | number, number>>(new Map());
  const [version, setVersion] = useState(0);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(fallbackViewport);
  const [pendingFocus, setPendingFocus] = useState<number | null>(null);
  const atBottom = useRef(true);

  const offsets = useMemo(() => {
    const out = new Float64Array(count + 1);
    let acc = 0;
    for (let i = 0; i < count; i++) {
      out[i] = acc;
      acc += heights.current.get(itemKey(i)) ?? estimateHeight;
    }
    out[count] = acc;
    return out;
    // `version` changes whenever a measured height changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [count, estimateHeight, itemKey, version]);
  const total = offsets[count] ?? 0;

  // What the ResizeObserver callback needs from the latest render.
  const latest = useRef({ offsets, estimateHeight });
  // Height change of measured items that start above the scroll position, not yet compensated.
  const anchorShift = useRef(0);

  // Measure mounted items. An item that starts above the scroll position pushes everything in
  // view when it changes height, so its change is remembered and compensated (scroll anchoring).
  const observer = useMemo(() => {
    if (typeof ResizeObserver === 'undefined') return null;
    return new ResizeObserver((entries) => {
      let changed = false;
      const scrolled = scrollRef.current?.scrollTop ?? 0;
      for (const entry of entries) {
        const el = entry.target as HTMLElement;
        const key = el.dataset.key;
        if (key === undefined) continue;
        const h = el.offsetHeight;
        if (h <= 0) continue;
        const k = el.dataset.keyType === 'number' ? Number(key) : key;
        const old = heights.current.get(k) ?? latest.current.estimateHeight;
        if (heights.current.get(k) !== h) {
          heights.current.set(k, h);
          changed = true;
          const start = latest.current.offsets[Number(el.dataset.index)];
          if (start !== undefined && start < scrolled) anchorShift.current += h - old;
        }
      }
      if (changed) setVersion((v) => v + 1);
    });
  }, []);

  // Apply the compensation in the same commit as the new offsets, before the browser paints.
  useLayoutEffect(() => {
    latest.current = { offsets, estimateHeight };
    const el = scrollRef.current;
    const shift = anchorShift.current;
    anchorShift.current = 0;
    if (!el || shift === 0 || (followTail && atBottom.current)) return;
    el.scrollTop += shift;
    setScrollTop(el.scrollTop);
  }, [offsets, estimateHeight, followTail]);
  useEffect(() => () => observer?.disconnect(), [observer]);

  const measureRef = useCallback(
    (el: HTMLDivElement | null) => {
      if (!el || !observer) return;
      observer.observe(el);
      return () => observer.unobserve(el);
    },
    [observer],
  );

  useLayoutEffect(() => {
    const el = scrollRef.current;
    if (!el) return;
    const update = () => {
      if (el.clientHeight > 0) setViewport(el.clientHeight);
    };
    update();
    if (typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(update);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  // Follow the tail when new items arrive and the user was at the bottom.
  useLayoutEffect(() => {
    const el = scrollRef.current;
    if (!followTail || !el || !atBottom.current) return;
    el.scrollTop = total;
    setScrollTop(el.scrollTop);
  }, [followTail, total]);

  const scrollToIndex = useCallback(
    (index: number, align: 'start' | 'center' | 'nearest' = 'nearest') => {
      const el = scrollRef.current;
      if (!el || count === 0) return;
      const i = Math.max(0, Math.min(count - 1, index));
      const top = offsets[i] ?? 0;
      const bottom = offsets[i + 1] ?? top + estimateHeight;
      const view = el.clientHeight || viewport;
      let next = el.scrollTop;
      if (align === 'start') next = top;
      else if (align === 'center') next = top - (view - (bottom - top)) / 2;
      else if (top < el.scrollTop) next = top;
      else if (bottom > el.scrollTop + view) next = bottom - view;
      next = Math.max(0, next);
      el.scrollTop = next;
      setScrollTop(next);
    },
    [count, offsets, estimateHeight, viewport],
  );

  const focusIndex = useCallback(
    (index: number) => {
      const i = Math.max(0, Math.min(count - 1, index));
      scrollToIndex(i);
      setPendingFocus(i);
    },
    [count, scrollToIndex],
  );

  useImperativeHandle(handleRef, () => ({ scrollToIndex, focusIndex }), [scrollToIndex, focusIndex]);

  // No dependency list on purpose: after every render until the row to focus has rendered.
  // eslint-disable-next-line react-hooks/exhaustive-deps -- see above
  useEffect(() => {
    if (pendingFocus === null) return;
    const target = scrollRef.current?.querySelector<HTMLElement>(`[data-index="${pendingFocus}"] [data-focus-target]`);
    if (target) {
      target.focus({ preventScroll: true });
      setPendingFocus(null);
    }
  });

  const onScroll = () => {
    const el = scrollRef.current;
    if (!el) return;
    setScrollTop(el.scrollTop);
    atBottom.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
  };

  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    const target = event.target as HTMLElement;
    if (!target.hasAttribute('data-focus-target')) return;
    const item = target.closest<HTMLElement>('[data-index]');
    if (!item) return;
    const index = Number(item.dataset.index);
    let next: number | null = null;
    if (event.key === 'ArrowDown') next = index + 1;
    else if (event.key === 'ArrowUp') next = index - 1;
    else if (event.key === 'Home') next = 0;
    else if (event.key === 'End') next = count - 1;
    else if (event.key === 'PageDown') next = findIndex(offsets, count, (offsets[index] ?? 0) + viewport);
    else if (event.key === 'PageUp') next = findIndex(offsets, count, (offsets[index] ?? 0) - viewport);
    if (next === null) return;
    event.preventDefault();
    focusIndex(next);
  };

  let start = 0;
  let end = -1;
  if (count > 0) {
    start = findIndex(offsets, count, Math.max(0, scrollTop - overscan));
    end = findIndex(offsets, count, scrollTop + viewport + overscan);
    if (pendingFocus !== null && (pendingFocus < start || pendingFocus > end)) {
      start = Math.min(start, pendingFocus);
      end = Math.max(end, pendingFocus);
    }
  }
  const items: ReactNode[] = [];
  for (let i = start; i <= end; i++) {
    const key = itemKey(i);
    items.push(
      <div
        key={key}
        ref={measureRef}
        role="listitem"
        aria-setsize={count}
        aria-posinset={i + 1}
        data-index={i}
        data-key={String(key)}
        data-key-type={typeof key}
        className="vlist-item"
        style={{ transform: `translateY(${offsets[i] ?? 0}px)` }}
      >
        {renderItem(i)}
      </div>,
    );
  }

  return (
    <div ref={scrollRef} className={`vlist ${className ?? ''}`} onScroll={onScroll} onKeyDown={onKeyDown}>
      <div role="list" aria-label={label} className="vlist-inner" style={{ height: total }}>
        {items}
      </div>
    </div>
  );
}
