// Command defendbench measures what the defender costs and what it saves,
// against a cloudftpd process of its own on 127.0.0.1:
//
//  1. idle: a legitimate user logs in (a fresh user each time, so every
//     login is a real argon2id verification) from 127.0.0.2;
//
//  2. attack: 100 parallel connections from 127.0.0.66 guess alice's
//     password as fast as the server answers, while the legitimate user
//     logs in again from 127.0.0.2; it reports how many passwords the
//     attacker got answered before every connection was refused at accept,
//     and the login latency against the idle one;
//
//  3. flood: connections from banned addresses at a fixed rate (10,000/s by
//     default) for a while; it reports the server's CPU time (user + system,
//     from /proc) over that time, in cores.
//
//     go build -o /tmp/cloudftpd ./cmd/cloudftpd
//     go run ./bench/cmd/defendbench -server /tmp/cloudftpd
//
// Linux only (/proc, 127.0.0.0/8 on lo). The attacker and the flood run in
// this process, on the same machine: their CPU is not the server's, but it
// competes with it, so the latency figure is a pessimistic one.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

func main() {
	bin := flag.String("server", "", "cloudftpd binary (required)")
	port := flag.Int("port", 12141, "control port on 127.0.0.1")
	logins := flag.Int("logins", 20, "legitimate logins per phase")
	attackers := flag.Int("attackers", 100, "parallel guessing connections")
	floodRate := flag.Int("flood-rate", 10000, "connections per second from banned addresses")
	floodFor := flag.Duration("flood-for", 10*time.Second, "how long the flood lasts")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "defendbench: -server is required")
		os.Exit(2)
	}
	if err := run(*bin, *port, *logins, *attackers, *floodRate, *floodFor); err != nil {
		fmt.Fprintln(os.Stderr, "defendbench:", err)
		os.Exit(1)
	}
}

const (
	legitSource  = "127.0.0.2"
	attackSource = "127.0.0.66"
	floodNet     = "127.0.1" // .1 to .200, banned before the flood
	floodHosts   = 200
)

func run(bin string, port, logins, attackers, floodRate int, floodFor time.Duration) error {
	dir, err := os.MkdirTemp("", "defendbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	users := filepath.Join(dir, "users.toml")
	for i := range 2 * logins {
		if err := addUser(bin, users, fmt.Sprintf("user%d", i)); err != nil {
			return err
		}
	}
	if err := addUser(bin, users, "alice"); err != nil {
		return err
	}
	conf := fmt.Sprintf(`[server]
state_dir = "state"

[[listener]]
address = %q
passive_ports = "25000-25099"

[storage]
backend = "local"
root = "homes"

[auth]
users_file = "users.toml"

[defender]
allow = []   # the defaults allow 127.0.0.0/8, where this benchmark lives

[log]
level = "warn"
`, addr)
	if err := os.WriteFile(filepath.Join(dir, "cloudftpd.toml"), []byte(conf), 0o600); err != nil {
		return err
	}
	srv := exec.Command(bin, "serve", "--config", "cloudftpd.toml")
	srv.Dir = dir
	serverLog, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return err
	}
	defer serverLog.Close()
	srv.Stderr = serverLog
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	if err := waitListening(addr); err != nil {
		return err
	}

	// 1. idle
	idle, err := loginLatencies(addr, 0, logins)
	if err != nil {
		return fmt.Errorf("idle logins: %w", err)
	}

	// 2. attack
	ctx, stop := context.WithCancel(context.Background())
	var sent, answered, refused atomic.Int64
	var wg sync.WaitGroup
	// After the ban the attackers reconnect at most this fast in total,
	// so that the attack does not turn into phase 3's flood.
	reconnect := rate.NewLimiter(2000, 100)
	for range attackers {
		wg.Go(func() { guess(ctx, addr, &sent, &answered, &refused, reconnect) })
	}
	time.Sleep(200 * time.Millisecond) // the attack is under way
	attacked, err := loginLatencies(addr, logins, logins)
	// Let the attack go on until every connection is refused at accept.
	deadline := time.Now().Add(30 * time.Second)
	for refused.Load() < int64(attackers) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("logins during the attack: %w", err)
	}

	// 3. flood from banned addresses
	for i := 1; i <= floodHosts; i++ {
		ban := exec.Command(bin, "ban", "add", fmt.Sprintf("%s.%d", floodNet, i), "--for", "1h", "--config", "cloudftpd.toml")
		ban.Dir = dir
		if out, err := ban.CombinedOutput(); err != nil {
			return fmt.Errorf("ban add: %v: %s", err, out)
		}
	}
	before, err := cpuTime(srv.Process.Pid)
	if err != nil {
		return err
	}
	start := time.Now()
	floodDone, floodFailed := flood(addr, floodRate, floodFor)
	wall := time.Since(start)
	after, err := cpuTime(srv.Process.Pid)
	if err != nil {
		return err
	}
	cores := (after - before).Seconds() / wall.Seconds()
	logged, _ := os.ReadFile(serverLog.Name())
	bans := strings.Count(string(logged), "defender: banned")

	fmt.Printf("logins, idle:            median %v, p90 %v (%d logins, each a fresh argon2id verification)\n", median(idle), p90(idle), len(idle))
	fmt.Printf("logins, under attack:    median %v, p90 %v (ratio of medians %.2fx)\n", median(attacked), p90(attacked), float64(median(attacked))/float64(median(idle)))
	fmt.Printf("attack:                  %d parallel connections from %s; %d passwords sent, %d answered (530) before the ban; %d later connections refused at accept\n", attackers, attackSource, sent.Load(), answered.Load(), refused.Load())
	fmt.Printf("log:                     %d ban lines (1 from the attack, %d from ban add); all lines by message: %v\n", bans, floodHosts, messages(string(logged)))
	fmt.Printf("flood:                   %d connections from %d banned addresses in %v (%.0f/s; %d failed to connect); server CPU %.3f cores\n",
		floodDone, floodHosts, wall.Round(time.Millisecond), float64(floodDone)/wall.Seconds(), floodFailed, cores)
	return nil
}

func addUser(bin, users, name string) error {
	cmd := exec.Command(bin, "user", "add", name, "--users", users, "--password-stdin")
	cmd.Stdin = strings.NewReader("secret-" + name + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("user add %s: %v: %s", name, err, out)
	}
	return nil
}

func waitListening(addr string) error {
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("server not listening on %s", addr)
}

func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// loginLatencies logs users user<first>... in one after another from
// legitSource and returns how long each took, from connect to 230.
func loginLatencies(addr string, first, n int) ([]time.Duration, error) {
	var out []time.Duration
	for i := first; i < first+n; i++ {
		start := time.Now()
		c, err := dialFrom(legitSource, addr)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		name := fmt.Sprintf("user%d", i)
		err = expect(r, "220")
		if err == nil {
			fmt.Fprintf(c, "USER %s\r\n", name)
			err = expect(r, "331")
		}
		if err == nil {
			fmt.Fprintf(c, "PASS secret-%s\r\n", name)
			err = expect(r, "230")
		}
		took := time.Since(start)
		fmt.Fprintf(c, "QUIT\r\n")
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, took)
		time.Sleep(100 * time.Millisecond)
	}
	return out, nil
}

// expect reads one reply (multi-line replies too) and checks its code.
func expect(r *bufio.Reader, code string) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if len(line) >= 4 && line[3] == ' ' {
			if !strings.HasPrefix(line, code) {
				return fmt.Errorf("want %s, got %q", code, strings.TrimSpace(line))
			}
			return nil
		}
	}
}

// guess is one attacking connection after another, each guessing
// passwords until the server closes it. A connection closed before the
// greeting was refused at accept.
func guess(ctx context.Context, addr string, sent, answered, refused *atomic.Int64, reconnect *rate.Limiter) {
	for n := 0; ctx.Err() == nil; n++ {
		if err := reconnect.Wait(ctx); err != nil {
			return
		}
		c, err := dialFrom(attackSource, addr)
		if err != nil {
			continue
		}
		stopOnCancel := context.AfterFunc(ctx, func() { c.Close() })
		r := bufio.NewReader(c)
		if expect(r, "220") != nil {
			refused.Add(1)
		} else {
			for i := 0; ctx.Err() == nil; i++ {
				fmt.Fprintf(c, "USER alice\r\n")
				if expect(r, "331") != nil {
					break
				}
				fmt.Fprintf(c, "PASS guess-%d-%d\r\n", n, i)
				sent.Add(1)
				err := expect(r, "530")
				if err != nil && !strings.Contains(err.Error(), "want 530") {
					break // closed: the session's failure limit or the ban
				}
				answered.Add(1)
			}
		}
		stopOnCancel()
		c.Close()
	}
}

// flood connects from the banned addresses at perSecond for d, reads
// until the server closes the connection, and returns how many
// connections were made and how many failed.
func flood(addr string, perSecond int, d time.Duration) (done, failed int64) {
	var ok, bad atomic.Int64
	lim := rate.NewLimiter(rate.Limit(perSecond), perSecond/100+1)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			buf := make([]byte, 64)
			for i := w; ; i += 64 {
				if lim.Wait(ctx) != nil {
					return
				}
				c, err := dialFrom(fmt.Sprintf("%s.%d", floodNet, i%floodHosts+1), addr)
				if err != nil {
					bad.Add(1)
					continue
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if n, err := c.Read(buf); n > 0 || !isClosed(err) {
					bad.Add(1) // greeted: not refused at accept
				} else {
					ok.Add(1)
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	return ok.Load(), bad.Load()
}

func isClosed(err error) bool {
	return err != nil && (errors.Is(err, net.ErrClosed) || err.Error() == "EOF" || strings.Contains(err.Error(), "reset"))
}

// cpuTime is a process's user + system CPU time, from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may
	// contain spaces: utime and stime are the 14th and 15th fields.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

func median(d []time.Duration) time.Duration { return quantile(d, 0.5) }
func p90(d []time.Duration) time.Duration    { return quantile(d, 0.9) }

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))].Round(100 * time.Microsecond)
}

// messages counts log lines by their msg= value.
func messages(log string) map[string]int {
	out := map[string]int{}
	for line := range strings.Lines(log) {
		_, msg, ok := strings.Cut(line, "msg=")
		if !ok {
			continue
		}
		if strings.HasPrefix(msg, `"`) {
			if end := strings.Index(msg[1:], `"`); end >= 0 {
				msg = msg[:end+2]
			}
		} else {
			msg, _, _ = strings.Cut(msg, " ")
		}
		out[strings.TrimSpace(msg)]++
	}
	return out
}
