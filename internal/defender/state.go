package defender

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// The state file is JSON:
//
//	{"version": 1, "bans": [
//	  {"prefix": "203.0.113.7/32", "reason": "10 points in 5m0s: login_failed x5",
//	   "since": "2025-01-02T03:04:05Z", "until": "2025-01-02T03:19:05Z",
//	   "forget": "2025-01-03T03:19:05Z", "strikes": 1, "manual": false}]}
//
// "until" and "forget" are null for a ban until Unban. Entries whose ban
// has ended but whose strikes are still remembered (until < now < forget)
// are kept so that escalation survives a restart too.
const stateVersion = 1

type stateFile struct {
	Version int          `json:"version"`
	Bans    []stateEntry `json:"bans"`
}

type stateEntry struct {
	Prefix  netip.Prefix `json:"prefix"`
	Reason  string       `json:"reason,omitempty"`
	Since   time.Time    `json:"since"`
	Until   *time.Time   `json:"until"`
	Forget  *time.Time   `json:"forget"`
	Strikes int          `json:"strikes"`
	Manual  bool         `json:"manual,omitempty"`
}

const (
	// flushDelay gathers the bans of a burst into one write; a ban is on
	// disk at most this long after it was made.
	flushDelay = 500 * time.Millisecond
	// retryDelay is the wait before writing again after a failed write.
	retryDelay = 5 * time.Second
	// sweepEvery is the pace of forgetting expired scores and bans.
	sweepEvery = time.Minute
)

// load reads the state file. A missing file is an empty state; a file that
// cannot be parsed is renamed aside and logged, and the defender starts
// empty rather than refusing to start (a server locked out of its own port
// by its ban list would be worse); any other error is returned.
func (d *Defender) load() error {
	if err := os.MkdirAll(filepath.Dir(d.stateFile), 0o750); err != nil {
		return fmt.Errorf("defender: state file: %w", err)
	}
	data, err := os.ReadFile(d.stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("defender: state file: %w", err)
	}
	var st stateFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err = dec.Decode(&st)
	if err == nil && st.Version != stateVersion {
		err = fmt.Errorf("version %d, want %d", st.Version, stateVersion)
	}
	if err == nil {
		err = validState(&st)
	}
	if err != nil {
		aside := d.stateFile + ".corrupt"
		if rerr := os.Rename(d.stateFile, aside); rerr != nil {
			return fmt.Errorf("defender: state file %s is unreadable (%v) and cannot be set aside: %w", d.stateFile, err, rerr)
		}
		d.log.Error("defender: state file is unreadable; starting with no bans, the file is kept aside",
			"file", d.stateFile, "kept_as", aside, "err", err.Error())
		return nil
	}

	now := d.now().UnixNano()
	for _, s := range st.Bans {
		e := &banEntry{since: s.Since.UnixNano(), strikes: s.Strikes, reason: s.Reason, manual: s.Manual}
		if s.Until != nil {
			e.until, e.forget = s.Until.UnixNano(), s.Forget.UnixNano()
			if e.forget <= now {
				continue // ended, and its strikes are forgotten
			}
		}
		d.bans.set(s.Prefix, e)
	}
	if d.bans.len() > d.maxBans {
		d.makeRoomLocked(now) // no other goroutine yet
	}
	d.savedGen = d.gen
	return nil
}

// validState checks what JSON decoding cannot: canonical prefixes and
// consistent times.
func validState(st *stateFile) error {
	for i, s := range st.Bans {
		if q, err := Canonical(s.Prefix); err != nil || q != s.Prefix {
			return fmt.Errorf("bans[%d]: prefix %v is not canonical", i, s.Prefix)
		}
		if (s.Until == nil) != (s.Forget == nil) || s.Strikes < 1 {
			return fmt.Errorf("bans[%d]: inconsistent entry", i)
		}
	}
	return nil
}

// writer saves the state file when the bans change, at most every
// flushDelay, and sweeps what has expired.
func (d *Defender) writer() {
	defer close(d.stopped)
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	var flush <-chan time.Time
	for {
		select {
		case <-d.done:
			return
		case <-sweep.C:
			d.sweep()
		case <-d.dirty:
			if flush == nil && d.stateFile != "" {
				flush = time.After(flushDelay)
			}
		case <-flush:
			flush = nil
			if err := d.saveIfChanged(); err != nil {
				flush = time.After(retryDelay)
			}
		}
	}
}

// saveIfChanged writes the state file if the bans changed since the last
// write. Only the writer goroutine, or Close after it stopped, calls it.
func (d *Defender) saveIfChanged() error {
	if d.stateFile == "" {
		return nil
	}
	d.mu.RLock()
	gen := d.gen
	if gen == d.savedGen {
		d.mu.RUnlock()
		return nil
	}
	st := stateFile{Version: stateVersion, Bans: make([]stateEntry, 0, d.bans.len())}
	for p, e := range d.bans.all {
		s := stateEntry{Prefix: p, Reason: e.reason, Since: time.Unix(0, e.since).UTC(), Strikes: e.strikes, Manual: e.manual}
		if e.until != 0 {
			u, f := time.Unix(0, e.until).UTC(), time.Unix(0, e.forget).UTC()
			s.Until, s.Forget = &u, &f
		}
		st.Bans = append(st.Bans, s)
	}
	d.mu.RUnlock()

	data, err := json.MarshalIndent(&st, "", "  ")
	if err == nil {
		err = writeFileAtomic(d.stateFile, append(data, '\n'))
	}
	if err != nil {
		// Log the first failure of a streak, not every retry.
		if d.saveErr == nil {
			d.log.Error("defender: cannot write the state file; bans are kept in memory, retrying", "file", d.stateFile, "err", err.Error())
		}
		d.saveErr = fmt.Errorf("defender: state file: %w", err)
		return d.saveErr
	}
	if d.saveErr != nil {
		d.log.Info("defender: state file written again", "file", d.stateFile)
	}
	d.saveErr = nil
	d.savedGen = gen
	return nil
}

// writeFileAtomic replaces path with data so that a crash leaves either
// the old or the new file: a temporary file in the same directory, synced,
// renamed over path, and the directory synced so the rename is durable.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	dh, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = dh.Sync()
	if cerr := dh.Close(); err == nil {
		err = cerr
	}
	return err
}
