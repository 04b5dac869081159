// Package imdstest is a fake EC2 instance metadata service for tests: an
// httptest server on 127.0.0.1 that speaks the IMDSv2 token flow and serves
// a map of metadata paths, so code that discovers addresses from EC2
// metadata is tested against the protocol the SDK really speaks, without a
// network.
//
// It offers:
//   - Server, with NewServer, SetMeta to change the metadata while tests
//     run (an Elastic IP re-associated), Fail to make it answer errors, and
//     counters of token requests and refused requests;
//   - Meta and ENI, which build the metadata map of an instance's network
//     interfaces and their public address associations.
//
// Like the real service it refuses a metadata GET without a valid token
// (401), requires a token TTL between 1 and 21600 seconds on PUT
// /latest/api/token, and refuses token requests carrying X-Forwarded-For.
package imdstest

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Header names of the IMDSv2 token flow.
const (
	TokenHeader    = "X-Aws-Ec2-Metadata-Token"
	TokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
)

const (
	tokenPath    = "/latest/api/token"
	metadataPath = "/latest/meta-data/"
)

// Server is a fake instance metadata service. Its zero value is not
// usable; call NewServer.
type Server struct {
	// URL is the endpoint to give the client ("http://127.0.0.1:port"),
	// e.g. imds.Options.Endpoint.
	URL string

	token string

	mu       sync.Mutex
	meta     map[string]string
	status   int // when not 0, every metadata GET answers this code
	tokens   int // token PUTs answered with a token
	refused  int // metadata GETs refused for a missing or wrong token
	requests int // metadata GETs with a valid token
}

// NewServer starts a fake metadata service serving meta and stops it when
// the test ends. Keys of meta are paths below /latest/meta-data/, exactly
// as a client asks for them ("public-ipv4", "network/interfaces/macs/");
// any other path answers 404, as the real service does for absent data.
func NewServer(t testing.TB, meta map[string]string) *Server {
	t.Helper()
	var b [16]byte
	rand.Read(b[:])
	s := &Server{token: "imdstest-" + hex.EncodeToString(b[:])}
	s.SetMeta(meta)
	srv := httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// SetMeta replaces the metadata served from now on.
func (s *Server) SetMeta(meta map[string]string) {
	m := make(map[string]string, len(meta))
	for k, v := range meta {
		m[k] = v
	}
	s.mu.Lock()
	s.meta = m
	s.mu.Unlock()
}

// Fail makes every metadata GET with a valid token answer status (e.g.
// 500); 0 serves the metadata again. Token requests keep working.
func (s *Server) Fail(status int) {
	s.mu.Lock()
	s.status = status
	s.mu.Unlock()
}

// TokenRequests reports how many tokens the server handed out.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens
}

// Refused reports how many metadata requests were refused (401) for a
// missing or wrong token.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Requests reports how many metadata requests carried a valid token.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == tokenPath:
		s.serveToken(w, r)
	case r.URL.Path+"/" == metadataPath || strings.HasPrefix(r.URL.Path, metadataPath):
		s.serveMetadata(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", http.MethodPut)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(TokenTTLHeader))
	if err != nil || ttl < 1 || ttl > 21600 {
		http.Error(w, "missing or invalid "+TokenTTLHeader, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.tokens++
	s.mu.Unlock()
	w.Header().Set(TokenTTLHeader, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte(s.token))
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	if r.Header.Get(TokenHeader) != s.token {
		s.refused++
		s.mu.Unlock()
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	s.requests++
	status := s.status
	body, ok := s.meta[strings.TrimPrefix(r.URL.Path, metadataPath)]
	s.mu.Unlock()
	switch {
	case status != 0:
		http.Error(w, http.StatusText(status), status)
	case !ok:
		http.NotFound(w, r)
	default:
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(body))
	}
}

// ENI is one elastic network interface of the fake instance.
type ENI struct {
	// MAC is the interface's MAC address, its key in the metadata.
	MAC string
	// Associations maps each public (Elastic) IPv4 address associated
	// with the interface to the private IPv4 address it is NATed to.
	Associations map[string]string
}

// Meta builds the metadata of an instance with the given interfaces and
// public-ipv4 ("" for an instance without a public address): the
// network/interfaces/macs/ listing, and for each interface with
// associations its ipv4-associations/ listing and one entry per public
// address, whose body is the private address.
func Meta(publicIPv4 string, enis ...ENI) map[string]string {
	m := make(map[string]string)
	if publicIPv4 != "" {
		m["public-ipv4"] = publicIPv4
	}
	var macs []string
	for _, e := range enis {
		macs = append(macs, e.MAC+"/")
		if len(e.Associations) == 0 {
			continue
		}
		dir := "network/interfaces/macs/" + e.MAC + "/ipv4-associations/"
		var pubs []string
		for pub, priv := range e.Associations {
			pubs = append(pubs, pub)
			m[dir+pub] = priv
		}
		slices.Sort(pubs)
		m[dir] = strings.Join(pubs, "\n")
	}
	m["network/interfaces/macs/"] = strings.Join(macs, "\n")
	return m
}
