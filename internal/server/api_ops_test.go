package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/api/apitest"
	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/diag"
	"github.com/cloudftpd/cloudftpd/internal/doctor"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

type apiStatus struct {
	Listeners  []struct{ Address, Bound string }
	Throughput struct {
		Upload   float64 `json:"upload_bytes_per_second"`
		Download float64 `json:"download_bytes_per_second"`
		Window   float64 `json:"window_seconds"`
	}
	NATWarnings int64 `json:"nat_warnings"`
}

type apiPassive struct {
	Listeners []struct {
		Listener, Bound string
		Ports           string `json:"passive_ports"`
		Size            *int
		Open            int
		InUse           int `json:"in_use"`
		Waiting         int
		Free            *int
	}
}

// TestAPIOperations: GET /v1/status counts a NAT warning when a PASV
// reply sends a private address to a public client (one announced by a
// PROXY header) and shows the throughput of a real download in
// progress; GET /v1/passive shows the pool of each listener with the
// port that client waits on; GET /v1/doctor is the doctor's report of
// the running config.
func TestAPIOperations(t *testing.T) {
	ports := clienttest.FreeRange(t, 4)
	// A second listener behind a "balancer" (PROXY protocol from
	// 127.0.0.2), with a passive range; the first serves plain clients.
	as := startAPIServerWith(t, "", func(text string) string {
		return strings.Replace(text, "\n[storage]", fmt.Sprintf(`
[[listener]]
address = "127.0.0.1:0"
passive_ports = %q
proxy_protocol = true
proxy_trusted = ["127.0.0.2/32"]

[storage]`, ports), 1)
	}, func(o *server.Options) {
		o.Doctor = func(ctx context.Context, cfg *config.Config) []diag.Check {
			return doctor.Diagnose(ctx, cfg, doctor.Options{})
		}
	})
	c := apitest.New(t, as.base, nil)
	proxied := as.srv.Addrs()[1].String()

	st := decode[apiStatus](t, c.Must(200, "GET", "/v1/status", as.read, nil))
	if st.NATWarnings != 0 || st.Throughput.Upload != 0 || st.Throughput.Download != 0 || len(st.Listeners) != 2 {
		t.Fatalf("status at start: %+v", st)
	}
	pa := decode[apiPassive](t, c.Must(200, "GET", "/v1/passive", as.read, nil))
	if len(pa.Listeners) != 2 || pa.Listeners[0].Size != nil || pa.Listeners[0].Free != nil ||
		pa.Listeners[1].Ports != ports || pa.Listeners[1].Size == nil || *pa.Listeners[1].Size != 4 || *pa.Listeners[1].Free != 4 ||
		pa.Listeners[1].InUse != 0 || pa.Listeners[1].Bound != proxied {
		t.Fatalf("passive at start: %+v", pa)
	}

	// A client on the internet (as the balancer says) gets 127.0.0.1 in
	// its PASV reply: the NAT failure, counted; and its port is in use.
	rc := dialProxied2(t, proxied, proxyV1(t, "203.0.113.7", 40000, proxied))
	rc.login("alice", "alice-secret")
	rc.must(227, "PASV")
	st = decode[apiStatus](t, c.Must(200, "GET", "/v1/status", as.read, nil))
	if st.NATWarnings != 1 {
		t.Errorf("nat_warnings after a private PASV reply to a public client: %d", st.NATWarnings)
	}
	pa = decode[apiPassive](t, c.Must(200, "GET", "/v1/passive", as.read, nil))
	if p := pa.Listeners[1]; p.InUse != 1 || p.Waiting != 1 || p.Open != 1 || *p.Free != 3 {
		t.Errorf("passive with a client waiting: %+v", p)
	}

	// Throughput: a download at the listener's 512 KiB/s.
	data := bytes.Repeat([]byte("0123456789abcdef"), 128<<10) // 2 MiB
	as.write("alice/big.bin", data)
	fc, _ := dialJlaffaye(t, as.testServer, "alice", "alice-secret")
	rd, err := fc.Retr("big.bin")
	check(t, "RETR", err)
	go io.Copy(io.Discard, rd)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st = decode[apiStatus](t, c.Must(200, "GET", "/v1/status", as.read, nil))
		if st.Throughput.Download > 64<<10 && st.Throughput.Window >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d := st.Throughput.Download; d < 64<<10 || d > 2<<20 || st.Throughput.Upload != 0 || st.Throughput.Window <= 0 || st.Throughput.Window > 11 {
		t.Errorf("throughput during a 512 KiB/s download: %+v", st.Throughput)
	}
	t.Logf("throughput during the download: %+v", st.Throughput)

	// The doctor, of the running config: its own ports are in use.
	rep := decode[struct {
		ConfigFile string `json:"config_file"`
		Failed     bool
		Checks     []struct{ Step, Status, Detail, Fix string }
	}](t, c.Must(200, "GET", "/v1/doctor", as.read, nil))
	steps := map[string]string{}
	for _, ch := range rep.Checks {
		steps[ch.Step] = ch.Status
	}
	if rep.ConfigFile != as.cfgFile || steps["users"] != "ok" || steps["storage"] != "ok" || steps["listener[1] passive ports"] == "" {
		t.Errorf("doctor: %+v", rep)
	}
}

// dialProxied2 is dialProxied from the second listener's balancer,
// 127.0.0.2.
func dialProxied2(t *testing.T, addr string, header []byte) *rawClient {
	t.Helper()
	c := dialFrom(t, "127.0.0.2", addr)
	if _, err := c.Write(header); err != nil {
		t.Fatal(err)
	}
	return rawOver(t, c)
}
