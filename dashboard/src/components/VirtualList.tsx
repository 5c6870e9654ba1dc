import { defaultRangeExtractor, useVirtualizer, type Range } from '@tanstack/react-virtual';
import { useCallback, useEffect, useImperativeHandle, useLayoutEffect, useRef, useState, type KeyboardEvent, type ReactNode, type Ref } from 'react';

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

/** Windowed list on @tanstack/react-virtual, with keyboard focus movement between items. */
export function VirtualList({ count, estimateHeight, renderItem, itemKey, overscan = 600, className, label, handleRef, fallbackViewport = 600, followTail = false }: VirtualListProps) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const [pendingFocus, setPendingFocus] = useState<number | null>(null);
  const atBottom = useRef(true);
  const rangeExtractor = useCallback(
    (range: Range) => {
      const out = defaultRangeExtractor(range);
      if (pendingFocus !== null && pendingFocus < count && !out.includes(pendingFocus)) out.push(pendingFocus);
      return out.sort((a, b) => a - b);
    },
    [pendingFocus, count],
  );
  const virtualizer = useVirtualizer({
    count,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => estimateHeight,
    getItemKey: itemKey,
    overscan: Math.ceil(overscan / estimateHeight),
    initialRect: { width: 0, height: fallbackViewport },
    rangeExtractor,
  });
  const total = virtualizer.getTotalSize();

  useLayoutEffect(() => {
    if (!followTail || !atBottom.current || count === 0) return;
    virtualizer.scrollToIndex(count - 1, { align: 'end' });
  }, [followTail, total, count, virtualizer]);

  const scrollToIndex = useCallback(
    (index: number, align: 'start' | 'center' | 'nearest' = 'nearest') => {
      if (count === 0) return;
      virtualizer.scrollToIndex(Math.max(0, Math.min(count - 1, index)), { align: align === 'nearest' ? 'auto' : align });
    },
    [count, virtualizer],
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
    if (el) atBottom.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
  };

  const indexAt = (y: number) => virtualizer.getVirtualItemForOffset(Math.max(0, y))?.index ?? 0;
  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    const target = event.target as HTMLElement;
    if (!target.hasAttribute('data-focus-target')) return;
    const item = target.closest<HTMLElement>('[data-index]');
    if (!item) return;
    const index = Number(item.dataset.index);
    const view = scrollRef.current?.clientHeight || fallbackViewport;
    const top = virtualizer.measurementsCache[index]?.start ?? 0;
    let next: number | null = null;
    if (event.key === 'ArrowDown') next = index + 1;
    else if (event.key === 'ArrowUp') next = index - 1;
    else if (event.key === 'Home') next = 0;
    else if (event.key === 'End') next = count - 1;
    else if (event.key === 'PageDown') next = indexAt(top + view);
    else if (event.key === 'PageUp') next = indexAt(top - view);
    if (next === null) return;
    event.preventDefault();
    focusIndex(next);
  };

  return (
    <div ref={scrollRef} className={`vlist ${className ?? ''}`} onScroll={onScroll} onKeyDown={onKeyDown}>
      <div role="list" aria-label={label} className="vlist-inner" style={{ height: total }}>
        {virtualizer.getVirtualItems().map((v) => (
          <div
            key={v.key}
            ref={virtualizer.measureElement}
            role="listitem"
            aria-setsize={count}
            aria-posinset={v.index + 1}
            data-index={v.index}
            className="vlist-item"
            style={{ transform: `translateY(${v.start}px)` }}
          >
            {renderItem(v.index)}
          </div>
        ))}
      </div>
    </div>
  );
}
