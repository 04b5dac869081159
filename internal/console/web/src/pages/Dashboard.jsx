import { useRef, useState } from 'preact/hooks';
import { APIError, get, post } from '../api.js';
import { Card, Empty, ErrorNote, Sparkline } from '../components.jsx';
import { bytes, duration, rate } from '../format.js';
import { useAction, usePoll } from '../hooks.js';

// The dashboard polls once a second: a transfer's progress, the
// throughput and the session list are all read from /v1/sessions.
const POLL_MS = 1000;
const SAMPLES = 60;

// optional reads an endpoint a server may not offer (an older one, or
// one without the feature): null instead of an error.
async function optional(path) {
  try {
    return await get(path);
  } catch (e) {
    if (e instanceof APIError && (e.status === 404 || e.status === 503)) return null;
    throw e;
  }
}

async function loadAll() {
  const [status, sessions, passive] = await Promise.all([
    get('/v1/status'),
    get('/v1/sessions'),
    optional('/v1/passive'),
  ]);
  return { status, sessions: sessions.sessions, passive, at: performance.now() };
}

// useThroughput turns successive session lists into bytes a second, up
// and down, counting only sessions seen in both lists.
function useThroughput(data) {
  const st = useRef({ prev: null, up: [], down: [], at: -1 });
  const s = st.current;
  if (data && data.at !== s.at) {
    if (s.prev) {
      const dt = (data.at - s.prev.at) / 1000;
      let up = 0;
      let down = 0;
      for (const x of data.sessions) {
        const p = s.prev.byId.get(x.id);
        if (!p) continue;
        up += Math.max(0, x.bytes_uploaded - p.up);
        down += Math.max(0, x.bytes_downloaded - p.down);
      }
      // The server's own rates (all sessions, over its window) when it
      // reports them; else what moved between two polls.
      const server = data.status.throughput;
      if (server) {
        up = server.upload_bytes_per_second;
        down = server.download_bytes_per_second;
      } else if (dt > 0) {
        up /= dt;
        down /= dt;
      }
      if (server || dt > 0) {
        s.up = [...s.up, up].slice(-SAMPLES);
        s.down = [...s.down, down].slice(-SAMPLES);
      }
    }
    s.prev = {
      at: data.at,
      byId: new Map(data.sessions.map((x) => [x.id, { up: x.bytes_uploaded, down: x.bytes_downloaded }])),
    };
    s.at = data.at;
  }
  return s;
}

function Progress({ t }) {
  const pct = t.size ? Math.min(100, (100 * t.bytes) / t.size) : null;
  return (
    <div class="progress" title={pct == null ? 'size unknown' : pct.toFixed(1) + '%'}>
      {pct == null ? <progress /> : <progress max={t.size} value={t.bytes} />}
      <span>{pct == null ? '' : pct.toFixed(0) + '%'}</span>
    </div>
  );
}

export function Transfers({ sessions }) {
  const xs = sessions.filter((s) => s.transfer && s.transfer.direction !== 'other').map((s) => s.transfer);
  return (
    <table class="transfers">
      <thead>
        <tr>
          <th>User</th>
          <th>Direction</th>
          <th>Path</th>
          <th>Progress</th>
          <th class="num">Bytes</th>
          <th class="num">Rate</th>
          <th class="num">ETA</th>
        </tr>
      </thead>
      <tbody>
        {xs.length === 0 && <Empty cols={7}>No transfer in progress.</Empty>}
        {xs.map((t) => (
          <tr key={t.session} data-session={t.session}>
            <td>{t.user}</td>
            <td>{t.direction}</td>
            <td class="path">{t.path}</td>
            <td>
              <Progress t={t} />
            </td>
            <td class="num" data-bytes={t.bytes}>
              {bytes(t.bytes)}
              {t.size != null && ' of ' + bytes(t.size)}
            </td>
            <td class="num">{rate(t.rate_bytes_per_second)}</td>
            <td class="num">{duration(t.eta_seconds)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function PassivePool({ passive }) {
  const ls = passive?.listeners || [];
  if (ls.length === 0) return <p class="empty">No passive port pool reported.</p>;
  return (
    <table class="passive">
      <thead>
        <tr>
          <th>Listener</th>
          <th>Range</th>
          <th>In use</th>
          <th class="num">Free</th>
          <th class="num">Sessions waiting</th>
        </tr>
      </thead>
      <tbody>
        {ls.map((l) => (
          <tr key={l.listener}>
            <td>{l.listener}</td>
            <td>{l.passive_ports || 'any port'}</td>
            <td>
              {l.size != null ? (
                <div class="progress">
                  <progress max={l.size} value={l.in_use} />
                  <span>
                    {l.in_use} of {l.size}
                  </span>
                </div>
              ) : (
                `${l.in_use} (${l.open} open)`
              )}
            </td>
            <td class="num">{l.free ?? '—'}</td>
            <td class="num">{l.waiting}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

// Doctor runs the doctor's checks of the running config on demand: they
// probe the network and storage, too slow to poll.
function Doctor() {
  const act = useAction();
  const [report, setReport] = useState(null);
  const run = async () => {
    const r = await act.run(() => get('/v1/doctor'));
    if (r) setReport(r);
  };
  return (
    <>
      <button onClick={run} disabled={act.busy}>
        {act.busy ? 'Running…' : 'Run the doctor'}
      </button>
      <ErrorNote error={act.error} />
      {report && (
        <table class="doctor">
          <thead>
            <tr>
              <th>Check</th>
              <th>Result</th>
              <th>Detail</th>
              <th>Fix</th>
            </tr>
          </thead>
          <tbody>
            {report.checks.map((c, i) => (
              <tr key={i} class={'check-' + c.status}>
                <td>{c.step}</td>
                <td>{c.status}</td>
                <td>{c.detail}</td>
                <td>{c.fix}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

// Reload re-reads the config file, as SIGHUP does.
function Reload({ file }) {
  const act = useAction();
  const [done, setDone] = useState(null);
  const run = async () => {
    setDone(null);
    const r = await act.run(() => post('/v1/reload'));
    if (r) setDone('Reloaded ' + r.file + ' at ' + new Date().toLocaleTimeString());
  };
  if (!file) return null;
  return (
    <p>
      <button onClick={run} disabled={act.busy}>
        Reload the config
      </button>{' '}
      {done && <span class="hint">{done}</span>}
      <ErrorNote error={act.error} />
    </p>
  );
}

export function Dashboard({ me }) {
  const { data, error } = usePoll(loadAll, POLL_MS);
  const tp = useThroughput(data);
  if (!data) return <ErrorNote error={error} />;
  const { status, sessions, passive } = data;
  // PASV replies that sent a private address to a client on a public
  // one: the NAT failure (null from a server that does not count them).
  const nat = status.nat_warnings ?? null;
  const exhausted = status.passive_ports_exhausted ?? 0;
  const transfers = sessions.filter((s) => s.transfer && s.transfer.direction !== 'other').length;
  const last = (a) => (a.length ? a[a.length - 1] : 0);
  // The server's rates are averages over its window (10 s).
  const win = status.throughput?.window_seconds;
  const avg = win ? ` (${Math.round(win)} s avg)` : '';
  return (
    <>
      <ErrorNote error={error} />
      <section class="cards">
        <Card label="Sessions" value={<span data-testid="session-count">{sessions.length}</span>} />
        <Card label="Transfers" value={transfers} />
        <Card label={'Download' + avg} value={rate(last(tp.down))} note={<Sparkline samples={tp.down} label="download rate" />} />
        <Card label={'Upload' + avg} value={rate(last(tp.up))} note={<Sparkline samples={tp.up} label="upload rate" />} />
        <Card
          label="NAT warnings"
          value={<span data-testid="nat-warnings">{nat == null ? '—' : nat}</span>}
          warn={nat > 0}
          note={nat > 0 ? 'PASV replies sent a private address to a public client: check the passive rules' : 'private addresses sent to public clients'}
        />
        <Card
          label="Passive ports"
          value={exhausted ? exhausted + ' refused' : 'ok'}
          warn={exhausted > 0}
          note={exhausted ? 'transfers refused (425) for want of a free port: widen passive_ports' : 'no transfer refused for want of a port'}
        />
        <Card label="Uptime" value={duration(status.uptime_seconds)} note={status.version} />
      </section>

      <h2>Transfers</h2>
      <Transfers sessions={sessions} />

      <h2>Sessions</h2>
      <table class="sessions">
        <thead>
          <tr>
            <th>User</th>
            <th>Client</th>
            <th>Listener</th>
            <th>Command</th>
            <th class="num">Idle</th>
            <th class="num">Down</th>
            <th class="num">Up</th>
          </tr>
        </thead>
        <tbody>
          {sessions.length === 0 && <Empty cols={7}>Nobody is connected.</Empty>}
          {sessions.map((s) => (
            <tr key={s.id} data-session={s.id}>
              <td>{s.user || <em>not logged in</em>}</td>
              <td>{s.client}</td>
              <td>
                {s.listener}
                {s.tls && <span class="tag">{s.tls_version || 'TLS'}</span>}
              </td>
              <td>{s.command}</td>
              <td class="num">{duration(s.idle_seconds)}</td>
              <td class="num">{bytes(s.bytes_downloaded)}</td>
              <td class="num">{bytes(s.bytes_uploaded)}</td>
            </tr>
          ))}
        </tbody>
      </table>

      <h2>Passive ports</h2>
      <PassivePool passive={passive} />

      <h2>Doctor</h2>
      <Doctor />

      <h2>Listeners</h2>
      <table>
        <thead>
          <tr>
            <th>Address</th>
            <th>Bound</th>
            <th>TLS</th>
            <th>Passive ports</th>
          </tr>
        </thead>
        <tbody>
          {status.listeners.map((l) => (
            <tr key={l.address}>
              <td>{l.address}</td>
              <td>{l.bound || <em>closed</em>}</td>
              <td>{l.tls}</td>
              <td>{l.passive_ports || 'any'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="hint">
        Server {status.version}, config {status.config_file || 'built-in defaults'}.
      </p>
      {me.scope === 'admin' && <Reload file={status.config_file} />}
    </>
  );
}
