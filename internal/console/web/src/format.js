// Human forms of the API's numbers.

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytes(n) {
  if (n == null) return '—';
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + units[i];
}

export function rate(n) {
  return n == null ? '—' : bytes(Math.round(n)) + '/s';
}

export function duration(seconds) {
  if (seconds == null) return '—';
  let s = Math.round(seconds);
  if (s < 60) return s + 's';
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return `${m}m ${s}s`;
}

export function time(iso) {
  if (!iso) return '—';
  const t = new Date(iso);
  return isNaN(t) ? iso : t.toLocaleString();
}

// parseBytes reads "10MiB", "512k", "1.5 GB" or a plain number of bytes,
// as the config does; "" is 0 (no limit). NaN when unreadable.
export function parseBytes(s) {
  const m = String(s).trim().match(/^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$/i);
  if (String(s).trim() === '') return 0;
  if (!m) return NaN;
  const pow = { '': 0, k: 1, m: 2, g: 3, t: 4 }[m[2].toLowerCase()];
  return Math.round(parseFloat(m[1]) * 1024 ** pow);
}
