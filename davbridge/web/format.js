// Formatting for people: sizes, dates, durations. No DOM: unit-tested under node
// (tests/web/unit.test.mjs).

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/// A byte count in binary units with at most one decimal: "12 B", "47.7 MiB", "50 MiB".
/// The same text as `store::format_size`, so a size reads alike here and in `cairnctl`.
export function size(n) {
  if (n == null) return '';
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit + 1 < UNITS.length) { value /= 1024; unit++; }
  if (unit === 0) return `${n} B`;
  let tenths = Math.round(value * 10);
  if (tenths >= 10240 && unit + 1 < UNITS.length) { tenths = 10; unit++; }
  return tenths % 10 === 0 ? `${tenths / 10} ${UNITS[unit]}` : `${Math.floor(tenths / 10)}.${tenths % 10} ${UNITS[unit]}`;
}

/// A moment, to the minute ("Dec 7, 2026, 04:25 AM"), or to the second with `seconds`.
export function when(iso, { seconds = false } = {}) {
  const d = new Date(iso);
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
    ...(seconds ? { second: '2-digit' } : {}),
  });
}

/// How long ago, coarsely: "just now", "5 s ago", "3 min ago", "2 h ago", "4 days ago".
export function ago(iso, now = Date.now()) {
  const s = Math.max(0, (now - new Date(iso).getTime()) / 1000);
  if (s < 2) return 'just now';
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  const days = Math.floor(s / 86400);
  return `${days} day${days > 1 ? 's' : ''} ago`;
}

/// Time left: "40 s", "3 min 5 s", "2 h 10 min"; "…" when unknown.
export function duration(s) {
  if (!Number.isFinite(s)) return '…';
  if (s < 60) return `${Math.ceil(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.ceil(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/// A folder named as the breadcrumbs name it: "Home", "Home / album / 2024".
export const placeName = (p) => ['Home', ...p.split('/').filter(Boolean)].join(' / ');
export const joinPath = (dir, name) => (dir === '/' ? '' : dir) + '/' + name;
export const parentOf = (p) => p.replace(/\/[^/]*$/, '') || '/';
export const baseName = (p) => p.split('/').pop();

/// Whether uploads of `bytes` in all fit the account now (`usage` as /api/v1/quota gives it);
/// if not, a sentence saying by how much.
export function fitMessage(bytes, usage, count = 1) {
  if (!usage || usage.available == null || bytes <= usage.available) return null;
  const what = count === 1 ? 'This upload needs' : `These ${count} files need`;
  return `${what} ${size(bytes)}, but only ${size(usage.available)} of your ${size(usage.quota)} quota is free.`;
}
