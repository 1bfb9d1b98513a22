// Package emulator is an offline stand-in for the upload providers' HTTP
// APIs. Tests and `broker dev` talk to it over real HTTP, and so can the
// official SDKs, so it checks signatures exactly as the providers do and
// answers in their JSON shapes (see /work/shared/specs).
//
// This file holds what every provider shares: options, the HTTP mux, byte
// and state storage, multipart parsing, content sniffing, fault injection
// and notification delivery. Each provider lives in its own file
// (cloudinary.go, uploadcare.go) and registers its routes under its own
// path prefix ("/cloudinary/…", "/uploadcare/…").
package emulator

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // Cloudinary's etag is an MD5; it identifies, it does not protect.
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // registered so image.DecodeConfig recognises uploads
	_ "image/jpeg"
	_ "image/png"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxBodyBytes = 100 << 20
	DefaultStaleAfter   = time.Hour
)

// defaultRetryDelays are the waits before the second, third and fourth
// notification attempt: one try plus the "up to three retries" that
// third-party descriptions attribute to Cloudinary (spec §4).
var defaultRetryDelays = []time.Duration{200 * time.Millisecond, time.Second, 3 * time.Second}

// Options configures an Emulator.
type Options struct {
	// Cloudinary is the emulated account; nil leaves the /cloudinary routes
	// unregistered, so they answer 404.
	Cloudinary *CloudinaryAccount
	// CloudinaryDeliveryURL is the base of url/secure_url in responses, e.g.
	// "http://127.0.0.1:3100/cloudinary". Empty derives it from each request:
	// scheme, Host and the prefix the handler is mounted under (http.StripPrefix
	// is detected through RequestURI) followed by "/cloudinary".
	CloudinaryDeliveryURL string
	// Uploadcare is the emulated project; nil leaves the /uploadcare routes
	// unregistered, so they answer 404.
	Uploadcare *UploadcareProject
	// UploadcareCDNURL is the CDN base of original_file_url and of webhook
	// "file" fields, e.g. "http://127.0.0.1:3100/uploadcare/cdn". Empty
	// derives it from each request like CloudinaryDeliveryURL, followed by
	// "/uploadcare/cdn".
	UploadcareCDNURL string
	// Dir, when set, keeps stored bytes (Dir/blobs) and metadata
	// (Dir/<provider>.json) on disk; New reloads them, so assets survive a
	// restart. Empty keeps everything in memory.
	Dir string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// StaleAfter is how far a signed timestamp may lie in the past (or the
	// future) before the request is refused; zero means one hour, as at
	// Cloudinary.
	StaleAfter time.Duration
	// MaxBodyBytes limits every API request body; zero means 100 MiB.
	MaxBodyBytes int64
	// Logger receives notification failures and internal errors; nil discards.
	Logger *slog.Logger
	// HTTPClient sends notifications; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// NotificationRetryDelays are the waits between notification attempts
	// after a failed one (error or non-2xx). Nil means 0.2 s, 1 s, 3 s; an
	// empty non-nil slice means a single attempt.
	NotificationRetryDelays []time.Duration
}

// Faults are failures injected into every emulated API request (not into
// delivery), for reliability tests of the broker's provider clients.
type Faults struct {
	// Delay is waited before the request is handled (or failed).
	Delay time.Duration
	// FailStatus is answered instead of handling the request, with the
	// provider's error body. Zero means no status fault, unless FailRate is
	// set alone, which then fails with 500.
	FailStatus int
	// CloseConn drops the connection without an answer instead, as a network
	// failure would. It takes precedence over FailStatus.
	CloseConn bool
	// FailRate is the fraction of requests that fail (FailStatus or
	// CloseConn). Zero, like one, means every request: setting a failure
	// and nothing else should make it happen.
	FailRate float64
}

// Emulator serves the emulated provider APIs. Create it with New.
type Emulator struct {
	opts        Options
	now         func() time.Time
	log         *slog.Logger
	store       *store
	client      *http.Client
	retryDelays []time.Duration
	mux         *http.ServeMux

	faultsMu sync.Mutex
	faults   Faults

	// Notifications run after the answer, in goroutines bound to bg, so
	// Close can stop their retries and wait for them.
	bg       context.Context
	stop     context.CancelFunc
	bgMu     sync.Mutex
	closed   bool
	inflight sync.WaitGroup

	cld *cloudinary
	uc  *uploadcare
}

// New builds an emulator, loading stored assets from opts.Dir when set.
func New(opts Options) (*Emulator, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = DefaultStaleAfter
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.NotificationRetryDelays == nil {
		opts.NotificationRetryDelays = defaultRetryDelays
	}
	st, err := openStore(opts.Dir)
	if err != nil {
		return nil, err
	}
	e := &Emulator{
		opts:        opts,
		now:         opts.Now,
		log:         opts.Logger,
		store:       st,
		client:      opts.HTTPClient,
		retryDelays: opts.NotificationRetryDelays,
		mux:         http.NewServeMux(),
	}
	e.bg, e.stop = context.WithCancel(context.Background())
	if opts.Cloudinary != nil {
		if e.cld, err = newCloudinary(e, *opts.Cloudinary); err != nil {
			return nil, err
		}
		e.cld.routes(e.mux)
	}
	if opts.Uploadcare != nil {
		if e.uc, err = newUploadcare(e, *opts.Uploadcare); err != nil {
			return nil, err
		}
		e.uc.routes(e.mux)
	}
	return e, nil
}

// Handler serves every emulated provider: Cloudinary under /cloudinary,
// Uploadcare under /uploadcare.
// Mount it at the root (`broker emulate`) or under a prefix with
// http.StripPrefix (`broker dev` uses /emulator).
func (e *Emulator) Handler() http.Handler { return e.mux }

// SetFaults replaces the injected faults; Faults{} turns them off.
func (e *Emulator) SetFaults(f Faults) {
	e.faultsMu.Lock()
	e.faults = f
	e.faultsMu.Unlock()
}

// Close abandons pending notifications (a request in flight is cancelled,
// no retry follows) and waits for their goroutines to end. The handler
// keeps answering; only background work stops.
func (e *Emulator) Close() error {
	e.bgMu.Lock()
	e.closed = true
	e.bgMu.Unlock()
	e.stop()
	e.inflight.Wait()
	return nil
}

// withFaults applies the current Faults before h. fail writes the
// provider's own error body, so clients parse an injected failure the way
// they would parse a real one; it gets the request because the body can
// depend on it (Uploadcare's ?jsonerrors=1).
func (e *Emulator) withFaults(h http.Handler, fail func(w http.ResponseWriter, r *http.Request, status int, msg string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.faultsMu.Lock()
		f := e.faults
		e.faultsMu.Unlock()
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-r.Context().Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		status := f.FailStatus
		if status == 0 && f.FailRate > 0 {
			status = http.StatusInternalServerError
		}
		if (status != 0 || f.CloseConn) && (f.FailRate <= 0 || f.FailRate >= 1 || mathrand.Float64() < f.FailRate) {
			if f.CloseConn {
				abortConnection(w)
				return
			}
			fail(w, r, status, fmt.Sprintf("Injected fault (HTTP %d)", status))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// abortConnection drops the client's connection without an answer.
func abortConnection(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	// HTTP/2 cannot be hijacked; aborting the handler resets the stream.
	panic(http.ErrAbortHandler)
}

// preflight answers CORS preflights, so a browser page on another origin
// can upload straight to the emulator as it would to the provider.
func preflight(w http.ResponseWriter, r *http.Request) {
	corsPreflight("GET, POST, PUT, DELETE, OPTIONS", "")(w, r)
}

// corsPreflight answers preflights allowing methods and headers; empty
// headers allows whatever the browser asks for.
func corsPreflight(methods, headers string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", methods)
		if headers == "" {
			headers = r.Header.Get("Access-Control-Request-Headers")
		}
		if headers != "" {
			h.Set("Access-Control-Allow-Headers", headers)
		}
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	}
}

// baseURL is scheme://host plus the path the handler is mounted under.
// http.StripPrefix rewrites URL.Path but not RequestURI, so whatever
// RequestURI has in front of the path we see is the mount point.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	prefix := ""
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		full, seen := u.EscapedPath(), r.URL.EscapedPath()
		if strings.HasSuffix(full, seen) {
			prefix = strings.TrimSuffix(full[:len(full)-len(seen)], "/")
		}
	}
	return scheme + "://" + r.Host + prefix
}

// marshalJSON encodes v compactly without HTML escaping: providers send
// "&" and "<" as they are, and signed bodies must match what is sent.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode JSON: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONAs(w, status, "application/json; charset=utf-8", v)
}

// writeJSONAs is writeJSON with another media type, for APIs that version
// their answers through it (Uploadcare REST).
func writeJSONAs(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := marshalJSON(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// notify POSTs body to target in the background, retrying after the
// configured delays on an error or a non-2xx answer. The caller's header
// (signature, timestamp) is sent unchanged with every attempt.
func (e *Emulator) notify(target string, body []byte, header http.Header) {
	e.bgMu.Lock()
	defer e.bgMu.Unlock()
	if e.closed {
		return
	}
	e.inflight.Add(1)
	go func() {
		defer e.inflight.Done()
		for attempt := 0; ; attempt++ {
			err := e.postNotification(target, body, header)
			if err == nil {
				e.log.Debug("emulator: notification delivered", "url", target, "attempt", attempt+1)
				return
			}
			if attempt >= len(e.retryDelays) || e.bg.Err() != nil {
				e.log.Warn("emulator: notification not delivered", "url", target, "attempts", attempt+1, "err", err)
				return
			}
			t := time.NewTimer(e.retryDelays[attempt])
			select {
			case <-e.bg.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
}

func (e *Emulator) postNotification(target string, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(e.bg, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("notification request: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("post notification: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post notification: HTTP %d", resp.StatusCode)
	}
	return nil
}

// randomHex returns n random bytes as lowercase hex (asset_id, version_id).
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// newUUID returns a random (version 4) UUID, the shape of Uploadcare's file
// IDs and request IDs.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// randomLowerAlnum returns n characters from [a-z0-9], the alphabet of
// Cloudinary's generated public IDs. The modulo bias is irrelevant here.
func randomLowerAlnum(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// store keeps uploaded bytes ("blobs") and each provider's metadata, on
// disk under dir or, without one, in memory.
type store struct {
	dir string // "" means memory only
	mu  sync.Mutex
	mem map[string][]byte
}

// blob describes stored bytes; ID is how they are found again.
type blob struct {
	ID   string
	Size int64
	MD5  string
}

func openStore(dir string) (*store, error) {
	s := &store{dir: dir, mem: map[string][]byte{}}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(s.blobDir(), 0o755); err != nil {
		return nil, fmt.Errorf("emulator: create storage: %w", err)
	}
	// Uploads interrupted by a crash leave temporary files; nothing refers
	// to them, so they can go.
	leftovers, _ := filepath.Glob(filepath.Join(s.blobDir(), ".tmp-*"))
	for _, f := range leftovers {
		_ = os.Remove(f)
	}
	return s, nil
}

func (s *store) blobDir() string { return filepath.Join(s.dir, "blobs") }

// put stores everything r yields, streaming to a file when on disk, and
// computes the size and MD5 on the way.
func (s *store) put(r io.Reader) (blob, error) {
	b := blob{ID: randomHex(16)}
	h := md5.New() //nolint:gosec // see import
	if s.dir == "" {
		var buf bytes.Buffer
		n, err := io.Copy(io.MultiWriter(&buf, h), r)
		if err != nil {
			return blob{}, fmt.Errorf("store upload: %w", err)
		}
		s.mu.Lock()
		s.mem[b.ID] = buf.Bytes()
		s.mu.Unlock()
		b.Size, b.MD5 = n, hex.EncodeToString(h.Sum(nil))
		return b, nil
	}
	f, err := os.CreateTemp(s.blobDir(), ".tmp-*")
	if err != nil {
		return blob{}, fmt.Errorf("store upload: %w", err)
	}
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(s.blobDir(), b.ID))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return blob{}, fmt.Errorf("store upload: %w", err)
	}
	b.Size, b.MD5 = n, hex.EncodeToString(h.Sum(nil))
	return b, nil
}

type memBlob struct{ *bytes.Reader }

func (memBlob) Close() error { return nil }

// open returns the stored bytes; the caller closes them.
func (s *store) open(id string) (io.ReadSeekCloser, error) {
	if s.dir == "" {
		s.mu.Lock()
		data, ok := s.mem[id]
		s.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("blob %s: %w", id, os.ErrNotExist)
		}
		return memBlob{bytes.NewReader(data)}, nil
	}
	if filepath.Base(id) != id || strings.HasPrefix(id, ".") {
		return nil, fmt.Errorf("blob %q: %w", id, os.ErrNotExist)
	}
	f, err := os.Open(filepath.Join(s.blobDir(), id))
	if err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	return f, nil
}

// blobInfo is what stored bytes say about themselves.
type blobInfo struct {
	// ImageFormat is image.DecodeConfig's name ("png", "jpeg", "gif") when
	// the bytes decode as an image, with its Config; "" otherwise.
	ImageFormat string
	Config      image.Config
	// Sniffed is http.DetectContentType of the first 512 bytes.
	Sniffed string
}

// inspect decodes the image header, if any, and sniffs the content type of
// a stored blob, without reading more than the headers need.
func (s *store) inspect(id string) (blobInfo, error) {
	rc, err := s.open(id)
	if err != nil {
		return blobInfo{}, err
	}
	defer rc.Close()
	var info blobInfo
	if cfg, format, err := image.DecodeConfig(rc); err == nil {
		info.ImageFormat, info.Config = format, cfg
	}
	if _, err := rc.Seek(0, io.SeekStart); err != nil {
		return blobInfo{}, fmt.Errorf("inspect blob: %w", err)
	}
	head := make([]byte, 512)
	n, err := io.ReadFull(rc, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return blobInfo{}, fmt.Errorf("inspect blob: %w", err)
	}
	info.Sniffed = http.DetectContentType(head[:n])
	return info, nil
}

// filePart is a file from a multipart body, spooled into the store.
type filePart struct {
	Field, Filename, ContentType string
	Blob                         blob
}

// readMultipart streams a multipart body into its text fields, in order,
// and its files. A part is a file when isFileField accepts its name and it
// carries a file name or a non-text Content-Type; a text part is a value
// even under a file field's name (Cloudinary takes data URIs so). The first
// maxFiles files are stored, later ones are read past. On error the files
// stored so far are removed again.
func (s *store) readMultipart(r *http.Request, isFileField func(name string) bool, maxFiles int) ([][2]string, []filePart, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, nil, fmt.Errorf("multipart: %w", err)
	}
	var pairs [][2]string
	var files []filePart
	fail := func(err error) ([][2]string, []filePart, error) {
		for _, f := range files {
			s.remove(f.Blob.ID)
		}
		return nil, nil, err
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return pairs, files, nil
		}
		if err != nil {
			return fail(fmt.Errorf("multipart: %w", err))
		}
		name := part.FormName()
		isFile := isFileField(name) && (part.FileName() != "" || !isTextPart(part.Header.Get("Content-Type")))
		switch {
		case name == "":
		case isFile && len(files) < maxFiles:
			b, err := s.put(part)
			if err != nil {
				return fail(err)
			}
			files = append(files, filePart{Field: name, Filename: part.FileName(), ContentType: part.Header.Get("Content-Type"), Blob: b})
		case isFile:
			// Not wanted: read past it.
		default:
			v, err := io.ReadAll(part)
			if err != nil {
				return fail(fmt.Errorf("multipart field %s: %w", name, err))
			}
			pairs = append(pairs, [2]string{name, string(v)})
		}
		if _, err := io.Copy(io.Discard, part); err != nil {
			return fail(fmt.Errorf("multipart: %w", err))
		}
	}
}

func isTextPart(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return contentType == "" || mt == "text/plain"
}

// remove forgets stored bytes; a missing blob is not an error.
func (s *store) remove(id string) {
	if s.dir == "" {
		s.mu.Lock()
		delete(s.mem, id)
		s.mu.Unlock()
		return
	}
	if filepath.Base(id) == id && !strings.HasPrefix(id, ".") {
		_ = os.Remove(filepath.Join(s.blobDir(), id))
	}
}

// saveState writes a provider's metadata as Dir/<name>.json, atomically so
// a crash leaves the previous version; without Dir it does nothing.
func (s *store) saveState(name string, v any) error {
	if s.dir == "" {
		return nil
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s state: %w", name, err)
	}
	tmp, err := os.CreateTemp(s.dir, ".tmp-"+name+"-*")
	if err != nil {
		return fmt.Errorf("save %s state: %w", name, err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(s.dir, name+".json"))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("save %s state: %w", name, err)
	}
	return nil
}

// loadState reads what saveState wrote; no file (or no Dir) leaves v as is.
func (s *store) loadState(name string, v any) error {
	if s.dir == "" {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(s.dir, name+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load %s state: %w", name, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("load %s state: %w", name, err)
	}
	return nil
}
