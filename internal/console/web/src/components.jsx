// Small pieces the pages share.

export function ErrorNote({ error }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error.message}
    </p>
  );
}

export function Empty({ cols, children }) {
  return (
    <tr>
      <td colSpan={cols} class="empty">
        {children}
      </td>
    </tr>
  );
}

export function Card({ label, value, note, warn }) {
  return (
    <div class={'card' + (warn ? ' warn' : '')}>
      <div class="label">{label}</div>
      <div class="value">{value}</div>
      {note && <div class="note">{note}</div>}
    </div>
  );
}

// Sparkline draws the last samples as a line, scaled to their maximum.
export function Sparkline({ samples, label }) {
  const w = 240;
  const h = 40;
  const max = Math.max(1, ...samples);
  const step = samples.length > 1 ? w / (samples.length - 1) : w;
  const points = samples.map((v, i) => `${(i * step).toFixed(1)},${(h - (v / max) * (h - 2) - 1).toFixed(1)}`).join(' ');
  return (
    <svg class="spark" viewBox={`0 0 ${w} ${h}`} role="img" aria-label={label} preserveAspectRatio="none">
      <polyline points={points} />
    </svg>
  );
}
