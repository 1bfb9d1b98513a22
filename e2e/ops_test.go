package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/brokerdev/broker/internal/testdb"
)

// tcpProxy forwards one local address to a target, and can be taken down
// (listener closed, every connection cut: the database is unreachable)
// and brought back on the same address.
type tcpProxy struct {
	t      *testing.T
	target string
	Addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]bool{}}
	p.listen("127.0.0.1:0")
	t.Cleanup(p.Down)
	return p
}

func (p *tcpProxy) listen(addr string) {
	p.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatalf("proxy: listen on %s: %v", addr, err)
	}
	p.mu.Lock()
	p.ln, p.Addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go p.accept(ln)
}

func (p *tcpProxy) accept(ln net.Listener) {
	for {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln { // taken down meanwhile
			p.mu.Unlock()
			client.Close()
			server.Close()
			return
		}
		p.conns[client], p.conns[server] = true, true
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(server, client)
		go pipe(client, server)
	}
}

// Down makes the database unreachable: new connections are refused and
// open ones are cut.
func (p *tcpProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Up brings the database back on the same address.
func (p *tcpProxy) Up() { p.listen(p.Addr) }

// viaProxy is dbURL with its host and port replaced by addr.
func viaProxy(t *testing.T, dbURL, addr string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// eventually polls check until it returns true, failing the test with
// what after a generous bound. The bound is no performance assertion: it
// only keeps a broken build from hanging the suite.
func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// probe answers GET path on a fresh connection each time, so the checks
// neither ride on nor keep open a connection the broker must close.
var probe = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

func probeGet(t *testing.T, target string) (int, http.Header, string) {
	t.Helper()
	resp, err := probe.Get(target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

// TestReadinessFollowsTheDatabase takes the database away from a running
// broker and brings it back: /readyz answers 503 while it is gone and 200
// once it is back, with no restart, and /healthz stays 200 throughout.
func TestReadinessFollowsTheDatabase(t *testing.T) {
	dbURL := testdb.PostgresURL(t)
	u, _ := url.Parse(dbURL)
	proxy := newTCPProxy(t, u.Host)
	broker := start(t, map[string]string{
		"ADDR":            "127.0.0.1:0",
		"DATABASE_URL":    viaProxy(t, dbURL, proxy.Addr),
		"CLOUDINARY_URL":  cloudinaryURL,
		"AUTH_JWT_SECRET": jwtSecret,
	}, "serve")
	tok := token(t, "alice")
	ready := func() int { s, _, _ := probeGet(t, broker.URL+"/readyz"); return s }

	if s := ready(); s != 200 {
		t.Fatalf("/readyz with the database up: %d", s)
	}
	if r := call(t, "GET", broker.URL+"/files", tok, "", nil); r.Status != 200 {
		t.Fatalf("GET /files with the database up: %d %s", r.Status, r.Raw)
	}

	proxy.Down()
	eventually(t, "/readyz to answer 503 with the database gone", func() bool { return ready() == 503 })
	status, header, raw := probeGet(t, broker.URL+"/readyz")
	if status != 503 || !strings.Contains(raw, `"code":"unavailable"`) || header.Get("Retry-After") == "" {
		t.Errorf("/readyz with the database gone: %d %q Retry-After=%q, want 503 unavailable with Retry-After", status, raw, header.Get("Retry-After"))
	}
	if r := call(t, "GET", broker.URL+"/files", tok, "", nil); r.Status != 503 || r.code() != "unavailable" {
		t.Errorf("GET /files with the database gone: %d %s, want 503 unavailable", r.Status, r.Raw)
	}
	if s, _, _ := probeGet(t, broker.URL+"/healthz"); s != 200 {
		t.Errorf("/healthz with the database gone: %d, want 200 (the process is alive)", s)
	}

	proxy.Up()
	eventually(t, "/readyz to answer 200 with the database back", func() bool { return ready() == 200 })
	if r := call(t, "GET", broker.URL+"/files", tok, "", nil); r.Status != 200 {
		t.Errorf("GET /files with the database back: %d %s", r.Status, r.Raw)
	}
	select {
	case <-broker.Done():
		t.Errorf("the broker exited: %s", broker.Output())
	default:
	}
}

// cloudinaryUpload signs an upload for tok, sends a PNG to the emulator
// with exactly the signed fields, and returns the signature the broker
// issued and Cloudinary's (the emulator's) answer.
func cloudinaryUpload(t *testing.T, broker *process, tok string) (issued string, answer reply) {
	t.Helper()
	sig := call(t, "GET", broker.URL+"/generate-signature?provider=cloudinary&resource_type=image", tok, "", nil)
	if sig.Status != 200 {
		t.Fatalf("generate-signature: %d %s", sig.Status, sig.Raw)
	}
	fields := map[string]string{}
	params, _ := sig.Body["params"].(map[string]any)
	for k, v := range params {
		fields[k], _ = v.(string)
	}
	fields["api_key"], _ = sig.Body["api_key"].(string)
	issued, _ = sig.Body["signature"].(string)
	fields["signature"] = issued
	target, _ := sig.Body["upload_url"].(string)
	answer = postMultipart(t, target, fields, "cat.png", pngFile)
	if answer.Status != 200 {
		t.Fatalf("upload to %s: %d %s", target, answer.Status, answer.Raw)
	}
	return issued, answer
}

// pngFile is a valid 1×1 PNG.
var pngFile = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")

// metricValue reads one sample of the Prometheus text the broker serves.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", series, err)
	}
	return v
}

// TestOperationsAcrossAFlow runs a whole flow against the binary, refusals
// included, then reads /metrics and the broker's own log: the counts add
// up, every line is structured and carries a request id, and no token,
// secret or signature appears in any line.
func TestOperationsAcrossAFlow(t *testing.T) {
	emu := start(t, map[string]string{"ADDR": "127.0.0.1:0", "CLOUDINARY_URL": cloudinaryURL}, "emulate")
	dbURL := testdb.PostgresURL(t)
	const dbPassword = "db-password-never-logged"
	if u, err := url.Parse(dbURL); err == nil && u.User != nil {
		if _, set := u.User.Password(); !set {
			// The test server trusts local connections, so an unneeded
			// password is accepted, and must not be logged either.
			u.User = url.UserPassword(u.User.Username(), dbPassword)
			dbURL = u.String()
		}
	}
	broker := start(t, map[string]string{
		"ADDR":                     "127.0.0.1:0",
		"DATABASE_URL":             dbURL,
		"CLOUDINARY_URL":           cloudinaryURL,
		"CLOUDINARY_UPLOAD_PREFIX": emu.URL + "/cloudinary",
		"CLOUDINARY_DELIVERY_URL":  emu.URL + "/cloudinary",
		"AUTH_JWT_SECRET":          jwtSecret,
		"LOG_LEVEL":                "debug",
	}, "serve")
	alice, bob := token(t, "alice"), token(t, "bob")

	issued, answer := cloudinaryUpload(t, broker, alice)
	responseSignature, _ := answer.Body["signature"].(string)
	if issued == "" || responseSignature == "" {
		t.Fatalf("no signatures to look for: %q %q", issued, responseSignature)
	}
	save := func(tok, body string) reply {
		return call(t, "POST", broker.URL+"/save-metadata", tok, "application/json", strings.NewReader(body))
	}
	if r := save(alice, answer.Raw); r.Status != 201 {
		t.Fatalf("save: %d %s", r.Status, r.Raw)
	}
	if r := save(alice, answer.Raw); r.Status != 200 {
		t.Errorf("save again: %d %s", r.Status, r.Raw)
	}
	// Without the response signature the broker asks Cloudinary's Admin API.
	unsigned, _ := json.Marshal(map[string]any{"public_id": answer.Body["public_id"], "secure_url": answer.Body["secure_url"], "resource_type": "image"})
	if r := save(alice, string(unsigned)); r.Status != 200 {
		t.Errorf("save through the Admin API: %d %s", r.Status, r.Raw)
	}
	if r := save(bob, answer.Raw); r.Status != 403 {
		t.Errorf("bob saving alice's upload: %d %s", r.Status, r.Raw)
	}
	list := call(t, "GET", broker.URL+"/files", alice, "", nil)
	files, _ := list.Body["files"].([]any)
	if list.Status != 200 || len(files) != 1 {
		t.Fatalf("list: %d %s", list.Status, list.Raw)
	}
	id, _ := files[0].(map[string]any)["id"].(string)
	if r := call(t, "DELETE", broker.URL+"/files/"+id, alice, "", nil); r.Status != 200 {
		t.Errorf("delete: %d %s", r.Status, r.Raw)
	}
	// Tokens where they do not belong, and a forged one.
	forged := alice[:len(alice)-4] + "AAAA"
	if r := call(t, "GET", broker.URL+"/files", forged, "", nil); r.Status != 401 {
		t.Errorf("forged token: %d", r.Status)
	}
	if r := call(t, "GET", broker.URL+"/files?access_token="+alice, "", "", nil); r.Status != 401 {
		t.Errorf("token in the query string: %d", r.Status)
	}

	// The metrics add up.
	_, _, text := probeGet(t, broker.URL+"/metrics")
	for series, want := range map[string]float64{
		`broker_signatures_issued_total{provider="cloudinary"}`:                                         1,
		`broker_saves_total{outcome="created",route="/save-metadata"}`:                                  1,
		`broker_saves_total{outcome="repeat",route="/save-metadata"}`:                                   2,
		`broker_saves_total{outcome="refused",route="/save-metadata"}`:                                  1,
		`broker_http_requests_total{method="DELETE",route="/files/:id",status="200"}`:                   1,
		`broker_http_requests_total{method="GET",route="/files",status="401"}`:                          2,
		`broker_http_request_duration_seconds_count{method="POST",route="/save-metadata",status="201"}`: 1,
	} {
		if got := metricValue(t, text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	// The Admin API lookup (GET) and the destroy (POST) were timed.
	for _, series := range []string{
		`broker_provider_request_duration_seconds_count{method="GET",provider="cloudinary",status="200"}`,
		`broker_provider_request_duration_seconds_count{method="POST",provider="cloudinary",status="200"}`,
	} {
		if got := metricValue(t, text, series); got != 1 {
			t.Errorf("%s = %v, want 1", series, got)
		}
	}
	if got := metricValue(t, text, "broker_db_pool_total_conns"); got < 1 {
		t.Errorf("broker_db_pool_total_conns = %v", got)
	}

	// The log: JSON lines, one per request with its id, and no secret.
	broker.Stop(t)
	out := broker.Output()
	requests := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", sc.Text())
			continue
		}
		if rec["msg"] == "request" {
			requests++
			if id, _ := rec["request_id"].(string); id == "" {
				t.Errorf("request log line without request_id: %s", sc.Text())
			}
		}
	}
	if requests < 10 {
		t.Errorf("%d request log lines, want one per request:\n%s", requests, out)
	}
	for what, secret := range map[string]string{
		"alice's token":             alice,
		"bob's token":               bob,
		"the forged token":          forged,
		"a token's signature part":  alice[strings.LastIndex(alice, ".")+1:],
		"AUTH_JWT_SECRET":           jwtSecret,
		"the Cloudinary API secret": "e2e_api_secret",
		"the issued signature":      issued,
		"the upload's signature":    responseSignature,
		"the database password":     dbPassword,
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the broker's log contains %s (%q)", what, secret)
		}
	}
}

// TestGracefulShutdown sends SIGTERM while a save is in flight (its body
// half sent): the broker stops accepting connections, finishes the save,
// and exits 0.
func TestGracefulShutdown(t *testing.T) {
	broker, _ := startCloudinaryStack(t)
	tok := token(t, "alice")
	_, answer := cloudinaryUpload(t, broker, tok)

	body, feed := io.Pipe()
	req, err := http.NewRequest("POST", broker.URL+"/save-metadata", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	type result struct {
		status int
		raw    string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := probe.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, raw: string(raw), err: err}
	}()
	half := len(answer.Raw) / 2
	if _, err := feed.Write([]byte(answer.Raw[:half])); err != nil {
		t.Fatal(err)
	}
	// In flight: the handler waits for the rest of the body (the metrics
	// request that asks counts itself too).
	eventually(t, "the save to be in flight", func() bool {
		_, _, text := probeGet(t, broker.URL+"/metrics")
		return metricValue(t, text, "broker_http_requests_in_flight") >= 2
	})

	if err := broker.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the broker to refuse new connections", func() bool {
		c, err := net.DialTimeout("tcp", broker.Addr, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	select {
	case r := <-done:
		t.Fatalf("the save ended before its body was sent: %+v", r)
	case <-broker.Done():
		t.Fatalf("the broker exited with a request in flight:\n%s", broker.Output())
	default:
	}

	if _, err := feed.Write([]byte(answer.Raw[half:])); err != nil {
		t.Fatal(err)
	}
	feed.Close()
	r := <-done
	if r.err != nil || r.status != 201 || !strings.Contains(r.raw, `"success":true`) {
		t.Fatalf("the save in flight at SIGTERM: %d %s %v, want 201", r.status, r.raw, r.err)
	}
	select {
	case <-broker.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("the broker did not exit after its last request:\n%s", broker.Output())
	}
	if code := broker.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0:\n%s", code, broker.Output())
	}
	for _, want := range []string{`"msg":"shutting down: finishing requests in flight"`, `"msg":"stopped: every request in flight finished"`} {
		if !strings.Contains(broker.Output(), want) {
			t.Errorf("the log lacks %s:\n%s", want, broker.Output())
		}
	}
}
