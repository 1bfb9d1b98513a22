package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/brokerdev/broker/signer"
)

// DefaultUnstoredTTL is how long Uploadcare keeps a file nobody stored
// (specs/uploadcare.md §2.1).
const DefaultUnstoredTTL = 24 * time.Hour

// UploadcareProject is the one Uploadcare project the emulator serves.
type UploadcareProject struct {
	PublicKey, SecretKey string
	// SignedUploads makes /base/, /from_url/, /multipart/start/ and /group/
	// require signature and expire, like the project setting (§1.3). The
	// other Upload API endpoints never ask for them: the official clients do
	// not send them there.
	SignedUploads bool
	// WebhookTargets receive file.uploaded, file.stored and file.deleted.
	WebhookTargets []string
	// WebhookSecret, when set, signs every webhook in X-Uc-Signature.
	WebhookSecret string
	// UnstoredTTL is how long a file nobody stored lives; zero means 24 h.
	// An expired file is removed: REST still describes it with
	// datetime_removed set, the Upload API's /info/ and the CDN answer 404.
	UnstoredTTL time.Duration
}

// uploadcare emulates the Upload API, the REST API's file endpoints, the
// CDN and webhooks (specs/uploadcare.md §8).
//
// Behaviour the spec leaves open, as the emulator settles it:
//   - UPLOADCARE_STORE=auto (or absent) stores the file, as a project with
//     auto-store on (Uploadcare's default) does.
//   - Simple REST auth is accepted over plain HTTP, where Uploadcare refuses
//     it, because the emulator is plain HTTP.
//   - A REST signature may cover the raw request URI or the URI relative to
//     the emulated API root (/uploadcare/api); at Uploadcare both are the
//     same, behind a mount prefix clients differ in what they sign.
//   - With ?jsonerrors=1 every Upload API error, injected faults included,
//     is HTTP 200 with the error envelope, as in Uploadcare's own mock server.
//   - Unstored files expire lazily: the first request after UnstoredTTL
//     removes them and sends file.deleted with a "system" initiator.
//   - /from_url/ only fetches loopback URLs (the emulator is offline) and
//     finishes before it answers, so the first status poll is final.
//   - Multipart part URLs point at the emulator, which stands in for S3:
//     faults do not apply to them. Pending multipart uploads and from_url
//     tokens live in memory only.
type uploadcare struct {
	e            *Emulator
	proj         UploadcareProject
	hooksCreated time.Time

	mu      sync.Mutex
	files   map[string]*ucFile
	groups  map[string]*ucGroup
	pending map[string]*ucPending // multipart uploads, by UUID
	tasks   map[string]*ucTask    // from_url results, by token
}

// ucFile is one uploaded file; it is also the persisted form.
type ucFile struct {
	UUID             string            `json:"uuid"`
	OriginalFilename string            `json:"original_filename"`
	MimeType         string            `json:"mime_type"`
	Size             int64             `json:"size"`
	Image            *ucImageInfo      `json:"image,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	Uploaded         time.Time         `json:"uploaded"`
	Stored           *time.Time        `json:"stored,omitempty"`
	Removed          *time.Time        `json:"removed,omitempty"`
	Blob             string            `json:"blob"`
}

// ucGroup is a file group; Files are the members as sent: a UUID,
// optionally followed by "/-/" and CDN operations.
type ucGroup struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Files   []string  `json:"files"`
}

// ucPending is a multipart upload between start and complete.
type ucPending struct {
	uuid, filename, contentType string
	size, partSize              int64
	store                       bool
	metadata                    map[string]string
	parts                       []*blob // nil until that part arrives
}

// ucTask is the outcome of a /from_url/ request.
type ucTask struct {
	uuid            string // set on success
	errMsg, errCode string // set on failure
}

const (
	ucStateName = "uploadcare"
	// ucRESTType is the media type REST clients must accept and get.
	ucRESTType = "application/vnd.uploadcare-v0.7+json"
	// ucDateSkew is how far a signed REST request's date may be off (§4.2).
	ucDateSkew = 15 * time.Minute
	// ucProjectID is the project_id reported in webhooks.
	ucProjectID = 1
	// Multipart limits of the Upload API (§2.5, ServerErrorCode).
	ucMultipartMinSize  = 10 << 20
	ucDefaultPartSize   = 5 << 20
	ucMinPartSize       = 5 << 20
	ucMaxPartSize       = 5 << 30
	ucMaxMetadataKeys   = 50
	ucMaxMetadataKey    = 64
	ucMaxMetadataValue  = 512
	ucMaxBatchFiles     = 100
	ucUploadAllowHeader = "DNT, X-PINGOTHER, X-UC-User-Agent, Authorization, Content-Type"
)

type ucState struct {
	Files  []*ucFile  `json:"files"`
	Groups []*ucGroup `json:"groups,omitempty"`
}

var (
	ucUUIDPattern        = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	ucMetadataKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
	// ucEvents orders the webhook events; a hook's id derives from it.
	ucEvents = []string{"file.uploaded", "file.stored", "file.deleted"}
)

func newUploadcare(e *Emulator, proj UploadcareProject) (*uploadcare, error) {
	if proj.PublicKey == "" || proj.SecretKey == "" {
		return nil, errors.New("emulator: uploadcare project needs a public key and a secret key")
	}
	if proj.UnstoredTTL <= 0 {
		proj.UnstoredTTL = DefaultUnstoredTTL
	}
	proj.WebhookTargets = slices.Clone(proj.WebhookTargets)
	c := &uploadcare{
		e:            e,
		proj:         proj,
		hooksCreated: e.now().UTC(),
		files:        map[string]*ucFile{},
		groups:       map[string]*ucGroup{},
		pending:      map[string]*ucPending{},
		tasks:        map[string]*ucTask{},
	}
	var st ucState
	if err := e.store.loadState(ucStateName, &st); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	for _, f := range st.Files {
		c.files[f.UUID] = f
	}
	for _, g := range st.Groups {
		c.groups[g.ID] = g
	}
	return c, nil
}

func (c *uploadcare) routes(mux *http.ServeMux) {
	upload := func(h ucHandler) http.Handler {
		return withCORS(c.e.withFaults(c.serveUpload(h), c.uploadFault))
	}
	mux.Handle("POST /uploadcare/upload/base/{$}", upload(c.base))
	mux.Handle("GET /uploadcare/upload/info/{$}", upload(c.info))
	mux.Handle("POST /uploadcare/upload/from_url/{$}", upload(c.fromURL))
	mux.Handle("GET /uploadcare/upload/from_url/status/{$}", upload(c.fromURLStatus))
	mux.Handle("POST /uploadcare/upload/multipart/start/{$}", upload(c.multipartStart))
	mux.Handle("POST /uploadcare/upload/multipart/complete/{$}", upload(c.multipartComplete))
	mux.Handle("POST /uploadcare/upload/group/{$}", upload(c.createGroup))
	mux.Handle("GET /uploadcare/upload/group/info/{$}", upload(c.groupInfo))
	mux.Handle("/uploadcare/upload/", upload(c.uploadFallback))
	mux.HandleFunc("OPTIONS /uploadcare/upload/", corsPreflight("POST, GET, OPTIONS", ucUploadAllowHeader))
	// Part URLs stand in for S3's presigned URLs, which browsers PUT to.
	mux.Handle("PUT /uploadcare/upload/multipart/parts/{uuid}/{part}", withCORS(http.HandlerFunc(c.multipartPart)))
	mux.HandleFunc("OPTIONS /uploadcare/upload/multipart/parts/", corsPreflight("PUT, OPTIONS", "Content-Type"))

	rest := func(h ucRESTHandler) http.Handler { return c.e.withFaults(c.serveREST(h), restFault) }
	mux.Handle("/uploadcare/api/files/storage/{$}", rest(c.batchStorage))
	mux.Handle("/uploadcare/api/files/{uuid}/{$}", rest(c.file))
	mux.Handle("/uploadcare/api/files/{uuid}/storage/{$}", rest(c.storage))
	mux.Handle("/uploadcare/api/", c.e.withFaults(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeRESTError(w, http.StatusNotFound, "Not found.")
	}), restFault))

	mux.HandleFunc("GET /uploadcare/cdn/{uuid}/{rest...}", c.cdn)
	mux.HandleFunc("GET /uploadcare/cdn/{uuid}", c.cdn)
}

// withCORS lets browser pages on any origin read the answer, as the Upload
// API and the CDN do.
func withCORS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		h.ServeHTTP(w, r)
	})
}

// ---- Upload API errors ----

// ucUploadError is an Upload API error (§1.4, §2.7).
type ucUploadError struct {
	status int
	code   string // ServerErrorCode
	msg    string
}

func (e *ucUploadError) Error() string { return e.msg }

func ucErrorf(status int, code, format string, args ...any) error {
	return &ucUploadError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// wantsJSONErrors reports ?jsonerrors=1, which every official JS client
// sends. Like Uploadcare's mock server, any value but an empty or false one
// counts.
func wantsJSONErrors(r *http.Request) bool {
	v := r.URL.Query().Get("jsonerrors")
	return v != "" && !isFalse(v)
}

// writeUploadError answers 200 with {"error":{…}} under jsonerrors, since
// the browser client parses only 200 answers; otherwise the status with the
// message as text/plain, which the Go and Python SDKs read.
func writeUploadError(w http.ResponseWriter, r *http.Request, e *ucUploadError) {
	if e.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	if wantsJSONErrors(r) {
		type detail struct {
			Content    string `json:"content"`
			StatusCode int    `json:"status_code"`
			ErrorCode  string `json:"error_code"`
		}
		writeJSON(w, http.StatusOK, map[string]detail{"error": {e.msg, e.status, e.code}})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	_, _ = io.WriteString(w, e.msg)
}

// uploadFault writes an injected failure with the error code a client would
// see for that status.
func (c *uploadcare) uploadFault(w http.ResponseWriter, r *http.Request, status int, msg string) {
	code := "BaseViewsError"
	switch {
	case status == http.StatusTooManyRequests:
		code = "RequestThrottledError"
	case status == http.StatusRequestEntityTooLarge:
		code = "RequestSizeLimitExceededError"
	case status >= 500:
		code = "UploadAPIError"
	}
	writeUploadError(w, r, &ucUploadError{status: status, code: code, msg: msg})
}

type ucHandler func(w http.ResponseWriter, r *http.Request) error

// serveUpload expires due files, then turns a handler's error into the
// Upload API's error answer; other errors are bugs or storage failures.
func (c *uploadcare) serveUpload(h ucHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.sweep(r)
		err := h(w, r)
		if err == nil {
			return
		}
		var ue *ucUploadError
		if !errors.As(err, &ue) {
			c.e.log.Error("emulator: uploadcare request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			ue = &ucUploadError{status: http.StatusInternalServerError, code: "UploadAPIError", msg: "Internal error."}
		}
		writeUploadError(w, r, ue)
	})
}

// ucUploadPaths are the Upload API's endpoints, for telling a wrong method
// from a wrong path.
var ucUploadPaths = map[string]bool{
	"base/": true, "info/": true, "from_url/": true, "from_url/status/": true,
	"multipart/start/": true, "multipart/complete/": true, "group/": true, "group/info/": true,
}

func (c *uploadcare) uploadFallback(_ http.ResponseWriter, r *http.Request) error {
	p := strings.TrimPrefix(r.URL.Path, "/uploadcare/upload/")
	if ucUploadPaths[p] {
		return ucErrorf(http.StatusMethodNotAllowed, "MethodNotAllowedError", "HTTP method %s is not allowed for /%s", r.Method, p)
	}
	return ucErrorf(http.StatusNotFound, "", "Not found.")
}

// ---- Upload API requests ----

// ucForm is a parsed Upload API request: its fields in order and its files.
type ucForm struct {
	pairs [][2]string
	files []filePart
}

// get returns the last value of a field, as a form parser would.
func (f *ucForm) get(name string) string {
	for i := len(f.pairs) - 1; i >= 0; i-- {
		if f.pairs[i][0] == name {
			return f.pairs[i][1]
		}
	}
	return ""
}

// readForm parses a multipart or urlencoded body, keeping up to maxFiles
// file parts under any field name (pyuploadcare names the part after the
// file). With withQuery the query string's fields come first, so /from_url/
// works both as the JS client sends it (query) and as pyuploadcare does
// (body). The caller releases the form's files.
func (c *uploadcare) readForm(w http.ResponseWriter, r *http.Request, maxFiles int, withQuery bool) (*ucForm, error) {
	form := &ucForm{}
	if withQuery {
		pairs, err := readURLEncoded(strings.NewReader(r.URL.RawQuery))
		if err != nil {
			return nil, ucErrorf(http.StatusBadRequest, "PostRequestParserFailedError", "HTTP POST request parsing failed.")
		}
		form.pairs = pairs
	}
	r.Body = http.MaxBytesReader(w, r.Body, c.e.opts.MaxBodyBytes)
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	var pairs [][2]string
	var err error
	switch {
	case mt == "multipart/form-data":
		pairs, form.files, err = c.e.store.readMultipart(r, func(string) bool { return true }, maxFiles)
	case ct == "" || mt == "application/x-www-form-urlencoded":
		pairs, err = readURLEncoded(r.Body)
	default:
		return nil, ucErrorf(http.StatusBadRequest, "PostRequestParserFailedError", "HTTP POST request parsing failed.")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, ucErrorf(http.StatusRequestEntityTooLarge, "RequestSizeLimitExceededError", "The size of the request is too large.")
	case err != nil:
		return nil, ucErrorf(http.StatusBadRequest, "PostRequestParserFailedError", "HTTP POST request parsing failed.")
	}
	form.pairs = append(form.pairs, pairs...)
	return form, nil
}

// release forgets the files the request did not turn into Uploadcare files.
func (c *uploadcare) release(form *ucForm) {
	for _, p := range form.files {
		c.e.store.remove(p.Blob.ID)
	}
	form.files = nil
}

// checkPubKey applies the project key check; field is how the endpoint
// names the key (UPLOADCARE_PUB_KEY or pub_key), which the message repeats.
func (c *uploadcare) checkPubKey(field, value string) error {
	switch {
	case value == "":
		return ucErrorf(http.StatusForbidden, "ProjectPublicKeyRequiredError", "%s is required.", field)
	case value != c.proj.PublicKey:
		return ucErrorf(http.StatusForbidden, "ProjectPublicKeyInvalidError", "%s is invalid.", field)
	}
	return nil
}

// checkSignature enforces signed uploads in the order required, format,
// expiry, HMAC (§1.4). expire is verified as the exact string received,
// because that string is what the client signed.
func (c *uploadcare) checkSignature(form *ucForm) error {
	if !c.proj.SignedUploads {
		return nil
	}
	sig, expire := form.get("signature"), form.get("expire")
	switch {
	case sig == "":
		return ucErrorf(http.StatusBadRequest, "SignatureRequiredError", "`signature` is required.")
	case expire == "":
		return ucErrorf(http.StatusBadRequest, "SignatureExpirationRequiredError", "`expire` is required.")
	}
	at, err := strconv.ParseInt(expire, 10, 64)
	if err != nil {
		return ucErrorf(http.StatusBadRequest, "SignatureExpirationInvalidError", "`expire` must be a UNIX timestamp.")
	}
	if at < c.e.now().Unix() {
		return ucErrorf(http.StatusForbidden, "SignatureExpirationError", "Expired signature.")
	}
	if !signer.VerifyUploadcareUpload(c.proj.SecretKey, expire, sig) {
		return ucErrorf(http.StatusForbidden, "SignatureInvalidError", "Invalid signature.")
	}
	return nil
}

// parseStore reads UPLOADCARE_STORE / store. "auto" follows the project's
// auto-store setting, which is on at Uploadcare unless switched off.
func parseStore(field, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "auto", "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, ucErrorf(http.StatusBadRequest, "BaseViewsError", "%s must be 0, 1 or auto.", field)
}

// parseMetadata collects metadata[key] fields, validated as the Upload API
// does (§2.1): keys [A-Za-z0-9_.:-]{1,64}, values of 1 to 512 characters,
// at most 50 keys.
func parseMetadata(pairs [][2]string) (map[string]string, error) {
	meta := map[string]string{}
	for _, p := range pairs {
		key, ok := strings.CutPrefix(p[0], "metadata[")
		if !ok || !strings.HasSuffix(key, "]") {
			continue
		}
		key, value := strings.TrimSuffix(key, "]"), p[1]
		_, dup := meta[key]
		switch {
		case key == "":
			return nil, ucErrorf(http.StatusBadRequest, "FileMetadataKeyEmptyError", "File's metadata key can not be empty.")
		case len(key) > ucMaxMetadataKey:
			return nil, ucErrorf(http.StatusBadRequest, "FileMetadataKeyLengthTooBigError", "Length of file metadata key `%s` can not be more than %d symbols.", key, ucMaxMetadataKey)
		case !ucMetadataKeyPattern.MatchString(key):
			return nil, ucErrorf(http.StatusBadRequest, "FileMetadataKeyForbiddenError", "File's metadata key `%s` contains symbols not allowed by the metadata key format.", key)
		case dup:
			return nil, ucErrorf(http.StatusBadRequest, "FileMetadataKeyDuplicatedError", "File's metadata key `%s` has a duplicate.", key)
		case value == "":
			return nil, ucErrorf(http.StatusBadRequest, "FileMetadataValueEmptyError", "Value of the file metadata key `%s` can not be empty.", key)
		case utf8.RuneCountInString(value) > ucMaxMetadataValue:
			return nil, ucErrorf(http.StatusBadRequest, "FileMetadataValueLengthTooBigError", "Value of file metadata's key `%s` can not be more than %d symbols in length.", key, ucMaxMetadataValue)
		case !utf8.ValidString(value) || strings.ContainsRune(value, 0):
			return nil, ucErrorf(http.StatusBadRequest, "FileMetadataValueForbiddenError", "Value of file metadata key `%s` contains symbols not allowed by the metadata value format.", key)
		}
		meta[key] = value
	}
	if len(meta) > ucMaxMetadataKeys {
		return nil, ucErrorf(http.StatusBadRequest, "FileMetadataKeysNumberTooBigError", "A file can not have more than %d metadata keys.", ucMaxMetadataKeys)
	}
	return meta, nil
}

// uploadOptions are the checks and settings every file-creating request
// shares: project key, signature, store flag and metadata.
func (c *uploadcare) uploadOptions(form *ucForm, keyField, storeField string, signed bool) (store bool, meta map[string]string, err error) {
	if err := c.checkPubKey(keyField, form.get(keyField)); err != nil {
		return false, nil, err
	}
	if signed {
		if err := c.checkSignature(form); err != nil {
			return false, nil, err
		}
	}
	if store, err = parseStore(storeField, form.get(storeField)); err != nil {
		return false, nil, err
	}
	if meta, err = parseMetadata(form.pairs); err != nil {
		return false, nil, err
	}
	return store, meta, nil
}

// ---- files ----

// newFile describes stored bytes as an Uploadcare file; add registers it.
func (c *uploadcare) newFile(b blob, filename, declaredType string, store bool, meta map[string]string) (*ucFile, error) {
	info, err := c.e.store.inspect(b.ID)
	if err != nil {
		return nil, fmt.Errorf("inspect upload: %w", err)
	}
	if filename == "" {
		filename = "original" // what the JS client names a nameless part
	}
	now := c.e.now().UTC()
	f := &ucFile{
		UUID:             newUUID(),
		OriginalFilename: filename,
		MimeType:         mimeTypeOf(info, filename, declaredType),
		Size:             b.Size,
		Image:            imageInfoOf(info),
		Metadata:         meta,
		Uploaded:         now,
		Blob:             b.ID,
	}
	if store {
		f.Stored = &now
	}
	return f, nil
}

// add registers and persists new files, and returns copies for answers
// and webhooks, which must not read the shared structs unlocked.
func (c *uploadcare) add(files ...*ucFile) ([]ucFile, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	snaps := make([]ucFile, len(files))
	for i, f := range files {
		c.files[f.UUID] = f
		snaps[i] = *f
	}
	if err := c.saveLocked(); err != nil {
		for _, f := range files {
			delete(c.files, f.UUID)
		}
		return nil, err
	}
	return snaps, nil
}

// live returns a copy of a file that is neither removed nor expired.
func (c *uploadcare) live(uuid string) (ucFile, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.files[uuid]
	if f == nil || f.Removed != nil || c.expired(f, c.e.now()) {
		return ucFile{}, false
	}
	return *f, true
}

func (c *uploadcare) expired(f *ucFile, now time.Time) bool {
	return f.Stored == nil && !now.Before(f.Uploaded.Add(c.proj.UnstoredTTL))
}

// sweep removes unstored files older than UnstoredTTL, as Uploadcare does,
// and reports them with file.deleted. It runs lazily, before each request.
func (c *uploadcare) sweep(r *http.Request) {
	now := c.e.now()
	c.mu.Lock()
	var gone []*ucFile
	for _, f := range c.files {
		if f.Removed == nil && c.expired(f, now) {
			at := f.Uploaded.Add(c.proj.UnstoredTTL)
			f.Removed = &at
			gone = append(gone, f)
		}
	}
	if len(gone) == 0 {
		c.mu.Unlock()
		return
	}
	if err := c.saveLocked(); err != nil {
		for _, f := range gone {
			f.Removed = nil
		}
		c.mu.Unlock()
		c.e.log.Error("emulator: expire uploadcare files", "err", err)
		return
	}
	snaps := make([]ucFile, len(gone))
	for i, f := range gone {
		snaps[i] = *f
	}
	c.mu.Unlock()
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].UUID < snaps[j].UUID })
	for _, f := range snaps {
		c.e.store.remove(f.Blob)
	}
	c.webhook(r, "file.deleted", ucInitiator{Type: "system"}, snaps)
}

var errUCNotFound = errors.New("uploadcare file not found")

// setStorage stores (remove=false) or deletes a file. It reports whether
// anything changed, so a repeated call sends no second webhook. Storing a
// removed file is not found; deleting one again answers it unchanged.
func (c *uploadcare) setStorage(uuid string, remove bool) (ucFile, bool, error) {
	c.mu.Lock()
	f := c.files[uuid]
	if f == nil || (!remove && f.Removed != nil) {
		c.mu.Unlock()
		return ucFile{}, false, errUCNotFound
	}
	if (remove && f.Removed != nil) || (!remove && f.Stored != nil) {
		snap := *f
		c.mu.Unlock()
		return snap, false, nil
	}
	old := *f
	now := c.e.now().UTC()
	if remove {
		f.Removed, f.Stored = &now, nil
	} else {
		f.Stored = &now
	}
	if err := c.saveLocked(); err != nil {
		*f = old
		c.mu.Unlock()
		return ucFile{}, false, err
	}
	snap := *f
	c.mu.Unlock()
	if remove {
		c.e.store.remove(snap.Blob)
	}
	return snap, true, nil
}

// saveLocked persists files and groups; c.mu must be held.
func (c *uploadcare) saveLocked() error {
	st := ucState{Files: make([]*ucFile, 0, len(c.files))}
	for _, f := range c.files {
		st.Files = append(st.Files, f)
	}
	sort.Slice(st.Files, func(i, j int) bool { return st.Files[i].UUID < st.Files[j].UUID })
	for _, g := range c.groups {
		st.Groups = append(st.Groups, g)
	}
	sort.Slice(st.Groups, func(i, j int) bool { return st.Groups[i].ID < st.Groups[j].ID })
	return c.e.store.saveState(ucStateName, st)
}

// mimeTypeOf decides a file's MIME type the way a content sniffer would:
// decoded images first, then a specific sniffed type, then the extension,
// then what the client declared, then the generic sniffed type.
func mimeTypeOf(info blobInfo, filename, declared string) string {
	if info.ImageFormat != "" {
		return "image/" + info.ImageFormat
	}
	sniffed := mediaType(info.Sniffed)
	if sniffed != "application/octet-stream" && sniffed != "text/plain" {
		return sniffed
	}
	if t := mediaType(mime.TypeByExtension(path.Ext(filename))); t != "" {
		return t
	}
	if t := mediaType(declared); t != "" && t != "application/octet-stream" {
		return t
	}
	return sniffed
}

func mediaType(v string) string {
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return mt
}

// ucImageInfo is Uploadcare's image_info / content_info.image. The
// emulator reads only the image header, so EXIF-derived fields are null.
type ucImageInfo struct {
	ColorMode        string   `json:"color_mode"`
	Orientation      *int     `json:"orientation"`
	Format           string   `json:"format"`
	Height           int      `json:"height"`
	Width            int      `json:"width"`
	Sequence         bool     `json:"sequence"`
	GeoLocation      any      `json:"geo_location"`
	DatetimeOriginal *string  `json:"datetime_original"`
	DPI              *[2]int  `json:"dpi"`
	_                struct{} // keeps literals keyed
}

func imageInfoOf(info blobInfo) *ucImageInfo {
	if info.ImageFormat == "" {
		return nil
	}
	return &ucImageInfo{
		ColorMode: colorModeOf(info.Config.ColorModel),
		Format:    strings.ToUpper(info.ImageFormat), // PIL's names: PNG, JPEG, GIF
		Height:    info.Config.Height,
		Width:     info.Config.Width,
	}
}

// colorModeOf names a decoded colour model as Uploadcare (PIL) does. The
// PNG decoder reports plain truecolour as RGBA(64) and truecolour with
// alpha as NRGBA(64), hence the split.
func colorModeOf(m color.Model) string {
	if _, ok := m.(color.Palette); ok {
		return "P"
	}
	switch m {
	case color.GrayModel, color.Gray16Model:
		return "L"
	case color.NRGBAModel, color.NRGBA64Model:
		return "RGBA"
	case color.CMYKModel:
		return "CMYK"
	}
	return "RGB"
}

// ---- answers ----

func ucTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

func ucTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := ucTime(*t)
	return &s
}

// safeFilename is Uploadcare's sanitised filename: only ASCII letters,
// digits, "_" and "." survive (IMG-0412_123.JPG → IMG0412_123.JPG, §2.3).
func safeFilename(name string) string {
	s := strings.Map(func(r rune) rune {
		if r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return -1
	}, name)
	if s == "" {
		return "file"
	}
	return s
}

type ucMime struct {
	Mime    string `json:"mime"`
	Type    string `json:"type"`
	Subtype string `json:"subtype"`
}

type ucContentInfo struct {
	Mime  ucMime       `json:"mime"`
	Image *ucImageInfo `json:"image,omitempty"`
}

func contentInfoOf(f ucFile) ucContentInfo {
	typ, sub, _ := strings.Cut(f.MimeType, "/")
	return ucContentInfo{Mime: ucMime{f.MimeType, typ, sub}, Image: f.Image}
}

func metadataOf(f ucFile) map[string]string {
	if f.Metadata == nil {
		return map[string]string{}
	}
	return f.Metadata
}

// ucUploadInfo is the Upload API's file info (§2.3), in the field order of
// a recorded answer.
type ucUploadInfo struct {
	Size             int64             `json:"size"`
	Total            int64             `json:"total"`
	Done             int64             `json:"done"`
	UUID             string            `json:"uuid"`
	FileID           string            `json:"file_id"`
	OriginalFilename string            `json:"original_filename"`
	IsImage          bool              `json:"is_image"`
	IsStored         bool              `json:"is_stored"`
	ImageInfo        *ucImageInfo      `json:"image_info"`
	VideoInfo        any               `json:"video_info"`
	ContentInfo      ucContentInfo     `json:"content_info"`
	IsReady          bool              `json:"is_ready"`
	Filename         string            `json:"filename"`
	MimeType         string            `json:"mime_type"`
	Metadata         map[string]string `json:"metadata"`
}

func uploadInfoOf(f ucFile) ucUploadInfo {
	return ucUploadInfo{
		Size:             f.Size,
		Total:            f.Size,
		Done:             f.Size,
		UUID:             f.UUID,
		FileID:           f.UUID,
		OriginalFilename: f.OriginalFilename,
		IsImage:          f.Image != nil,
		IsStored:         f.Stored != nil,
		ImageInfo:        f.Image,
		ContentInfo:      contentInfoOf(f),
		IsReady:          true,
		Filename:         safeFilename(f.OriginalFilename),
		MimeType:         f.MimeType,
		Metadata:         metadataOf(f),
	}
}

// ucFileObject is the REST API v0.7 file (§4.3), in the field order of the
// webhook sample W2.
type ucFileObject struct {
	UUID             string            `json:"uuid"`
	IsImage          bool              `json:"is_image"`
	IsReady          bool              `json:"is_ready"`
	MimeType         string            `json:"mime_type"`
	OriginalFilename string            `json:"original_filename"`
	Size             int64             `json:"size"`
	DatetimeUploaded string            `json:"datetime_uploaded"`
	DatetimeStored   *string           `json:"datetime_stored"`
	DatetimeRemoved  *string           `json:"datetime_removed"`
	OriginalFileURL  *string           `json:"original_file_url"`
	URL              string            `json:"url"`
	Variations       any               `json:"variations"`
	ContentInfo      ucContentInfo     `json:"content_info"`
	Metadata         map[string]string `json:"metadata"`
	// Appdata is present (as null: the emulator runs no add-ons) only when
	// asked for with include=appdata, and in webhooks.
	Appdata *json.RawMessage `json:"appdata,omitempty"`
}

var jsonNull = json.RawMessage("null")

func (c *uploadcare) fileObject(r *http.Request, f ucFile, withAppdata bool) ucFileObject {
	o := ucFileObject{
		UUID:             f.UUID,
		IsImage:          f.Image != nil,
		IsReady:          true,
		MimeType:         f.MimeType,
		OriginalFilename: f.OriginalFilename,
		Size:             f.Size,
		DatetimeUploaded: ucTime(f.Uploaded),
		DatetimeStored:   ucTimePtr(f.Stored),
		DatetimeRemoved:  ucTimePtr(f.Removed),
		URL:              baseURL(r) + "/uploadcare/api/files/" + f.UUID + "/",
		ContentInfo:      contentInfoOf(f),
		Metadata:         metadataOf(f),
	}
	if f.Removed == nil {
		u := c.cdnURL(r, f)
		o.OriginalFileURL = &u
	}
	if withAppdata {
		o.Appdata = &jsonNull
	}
	return o
}

// cdnURL is the file's CDN URL with its sanitised name, like
// original_file_url.
func (c *uploadcare) cdnURL(r *http.Request, f ucFile) string {
	base := strings.TrimSuffix(c.e.opts.UploadcareCDNURL, "/")
	if base == "" {
		base = baseURL(r) + "/uploadcare/cdn"
	}
	return base + "/" + f.UUID + "/" + url.PathEscape(safeFilename(f.OriginalFilename))
}

// ---- Upload API endpoints ----

// base is POST /base/: every file part becomes a file, answered as
// {"<field name>": "<uuid>"} (§2.2).
func (c *uploadcare) base(w http.ResponseWriter, r *http.Request) error {
	form, err := c.readForm(w, r, math.MaxInt, false)
	if err != nil {
		return err
	}
	defer c.release(form)
	if err := c.checkPubKey("UPLOADCARE_PUB_KEY", form.get("UPLOADCARE_PUB_KEY")); err != nil {
		return err
	}
	if err := c.checkSignature(form); err != nil {
		return err
	}
	if len(form.files) == 0 {
		return ucErrorf(http.StatusBadRequest, "FilesRequiredError", "Request does not contain files.")
	}
	store, meta, err := c.uploadOptions(form, "UPLOADCARE_PUB_KEY", "UPLOADCARE_STORE", false)
	if err != nil {
		return err
	}
	files := make([]*ucFile, len(form.files))
	for i, p := range form.files {
		if files[i], err = c.newFile(p.Blob, p.Filename, p.ContentType, store, meta); err != nil {
			return err
		}
	}
	snaps, err := c.add(files...)
	if err != nil {
		return err
	}
	answer := map[string]string{}
	for i, p := range form.files {
		answer[p.Field] = snaps[i].UUID
	}
	form.files = nil // the files own the bytes now
	writeJSON(w, http.StatusOK, answer)
	c.webhook(r, "file.uploaded", apiInitiator(), snaps)
	return nil
}

// info is GET /info/?pub_key=&file_id= (§2.3).
func (c *uploadcare) info(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := c.checkPubKey("pub_key", q.Get("pub_key")); err != nil {
		return err
	}
	id := q.Get("file_id")
	if id == "" {
		return ucErrorf(http.StatusBadRequest, "FileIdRequiredError", "file_id is required.")
	}
	f, ok := c.live(id)
	if !ok {
		return ucErrorf(http.StatusNotFound, "FileNotFoundError", "File is not found.")
	}
	writeJSON(w, http.StatusOK, uploadInfoOf(f))
	return nil
}

// fromURL is POST /from_url/ (§2.4). The emulator is offline, so only
// loopback URLs are fetched; the fetch happens before the answer, and the
// token's status is final at the first poll.
func (c *uploadcare) fromURL(w http.ResponseWriter, r *http.Request) error {
	form, err := c.readForm(w, r, 0, true)
	if err != nil {
		return err
	}
	store, meta, err := c.uploadOptions(form, "pub_key", "store", true)
	if err != nil {
		return err
	}
	raw := form.get("source_url")
	if raw == "" {
		return ucErrorf(http.StatusBadRequest, "SourceURLRequiredError", "source_url is required.")
	}
	src, err := url.Parse(raw)
	switch {
	case err != nil:
		return ucErrorf(http.StatusBadRequest, "URLParsingFailedError", "Failed to parse URL.")
	case src.Scheme == "":
		return ucErrorf(http.StatusBadRequest, "URLSchemeRequiredError", "No URL scheme supplied.")
	case src.Scheme != "http" && src.Scheme != "https":
		return ucErrorf(http.StatusBadRequest, "URLSchemeInvalidError", "Invalid URL scheme.")
	case src.Hostname() == "":
		return ucErrorf(http.StatusBadRequest, "URLHostRequiredError", "No URL host supplied.")
	case !isLoopbackHost(src.Hostname()):
		return ucErrorf(http.StatusBadRequest, "URLValidationError",
			"Failed to validate URL: the emulator works offline and fetches only loopback URLs (localhost, 127.0.0.1, ::1), not %s.", src.Hostname())
	}
	filename := form.get("filename")
	if filename == "" {
		filename = path.Base(src.Path)
		if filename == "/" || filename == "." {
			filename = ""
		}
	}
	task := &ucTask{}
	b, declared, err := c.download(r, src)
	var ue *ucUploadError
	switch {
	case errors.As(err, &ue):
		task.errMsg, task.errCode = ue.msg, ue.code
	case err != nil:
		return err
	default:
		f, err := c.newFile(b, filename, declared, store, meta)
		if err != nil {
			c.e.store.remove(b.ID)
			return err
		}
		snaps, err := c.add(f)
		if err != nil {
			c.e.store.remove(b.ID)
			return err
		}
		task.uuid = f.UUID
		defer c.webhook(r, "file.uploaded", apiInitiator(), snaps)
	}
	token := newUUID()
	c.mu.Lock()
	c.tasks[token] = task
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"type": "token", "token": token})
	return nil
}

func isLoopbackHost(host string) bool {
	host = strings.ToLower(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// download fetches src into the store. Failures the real service reports
// in the token's status come back as *ucUploadError.
func (c *uploadcare) download(r *http.Request, src *url.URL) (blob, string, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, src.String(), nil)
	if err != nil {
		return blob{}, "", ucErrorf(http.StatusBadRequest, "URLParsingFailedError", "Failed to parse URL.")
	}
	resp, err := c.e.client.Do(req)
	if err != nil {
		return blob{}, "", ucErrorf(http.StatusInternalServerError, "DownloadFileHTTPNetworkError", "HTTP network error: %v.", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500:
		return blob{}, "", ucErrorf(http.StatusInternalServerError, "DownloadFileHTTPServerError", "HTTP server error: %d.", resp.StatusCode)
	case resp.StatusCode >= 400:
		return blob{}, "", ucErrorf(http.StatusInternalServerError, "DownloadFileHTTPClientError", "HTTP client error: %d.", resp.StatusCode)
	}
	limit := c.e.opts.MaxBodyBytes
	b, err := c.e.store.put(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return blob{}, "", ucErrorf(http.StatusInternalServerError, "DownloadFileHTTPNetworkError", "HTTP network error: %v.", err)
	}
	if b.Size > limit {
		c.e.store.remove(b.ID)
		return blob{}, "", ucErrorf(http.StatusInternalServerError, "DownloadFileSizeLimitExceededError", "Downloaded file is too big: %d > %d.", b.Size, limit)
	}
	return b, resp.Header.Get("Content-Type"), nil
}

// fromURLStatus is GET /from_url/status/?token=: unknown, error (as a 200
// body) or success with the file info.
func (c *uploadcare) fromURLStatus(w http.ResponseWriter, r *http.Request) error {
	token := r.URL.Query().Get("token")
	if token == "" {
		return ucErrorf(http.StatusBadRequest, "TokenRequiredError", "token is required.")
	}
	c.mu.Lock()
	task := c.tasks[token]
	c.mu.Unlock()
	switch {
	case task == nil:
		writeJSON(w, http.StatusOK, map[string]string{"status": "unknown"})
	case task.uuid == "":
		writeJSON(w, http.StatusOK, map[string]string{"status": "error", "error": task.errMsg, "error_code": task.errCode})
	default:
		f, ok := c.live(task.uuid)
		if !ok {
			writeJSON(w, http.StatusOK, map[string]string{"status": "error", "error": "File is not found.", "error_code": "FileNotFoundError"})
			return nil
		}
		writeJSON(w, http.StatusOK, struct {
			ucUploadInfo
			Status string `json:"status"`
		}{uploadInfoOf(f), "success"})
	}
	return nil
}

// multipartStart is POST /multipart/start/ (§2.5): it answers the part
// URLs, which point at the emulator's part sink.
func (c *uploadcare) multipartStart(w http.ResponseWriter, r *http.Request) error {
	form, err := c.readForm(w, r, 0, false)
	if err != nil {
		return err
	}
	store, meta, err := c.uploadOptions(form, "UPLOADCARE_PUB_KEY", "UPLOADCARE_STORE", true)
	if err != nil {
		return err
	}
	for _, field := range []string{"filename", "size", "content_type"} {
		if form.get(field) == "" {
			return ucErrorf(http.StatusBadRequest, "RequestParamRequiredError", "%s is required.", field)
		}
	}
	size, err := strconv.ParseInt(form.get("size"), 10, 64)
	if err != nil || size < 0 {
		return ucErrorf(http.StatusBadRequest, "MultipartSizeInvalidError", "size should be integer.")
	}
	if size < ucMultipartMinSize {
		return ucErrorf(http.StatusBadRequest, "MultipartFileSizeTooSmallError",
			"File size can not be less than %d bytes. Please use direct upload instead of multipart.", ucMultipartMinSize)
	}
	partSize := int64(ucDefaultPartSize)
	if v := form.get("part_size"); v != "" {
		if partSize, err = strconv.ParseInt(v, 10, 64); err != nil {
			return ucErrorf(http.StatusBadRequest, "MultipartPartSizeInvalidError", "Multipart Upload Part Size should be an integer.")
		}
	}
	switch {
	case partSize < ucMinPartSize:
		return ucErrorf(http.StatusBadRequest, "MultipartPartSizeTooSmallError", "Multipart Upload Part Size can not be less than %d bytes.", ucMinPartSize)
	case partSize > ucMaxPartSize:
		return ucErrorf(http.StatusBadRequest, "MultipartPartSizeTooBigError", "Multipart Upload Part Size can not be more than %d bytes.", int64(ucMaxPartSize))
	}
	p := &ucPending{
		uuid:        newUUID(),
		filename:    form.get("filename"),
		contentType: form.get("content_type"),
		size:        size,
		partSize:    partSize,
		store:       store,
		metadata:    meta,
		parts:       make([]*blob, (size+partSize-1)/partSize),
	}
	urls := make([]string, len(p.parts))
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/uploadcare/upload/multipart/parts/%s/%d", baseURL(r), p.uuid, i+1)
	}
	c.mu.Lock()
	c.pending[p.uuid] = p
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"uuid": p.uuid, "parts": urls})
	return nil
}

// multipartPart is the S3 stand-in: PUT stores one part, unauthenticated,
// as a presigned URL would take it. A part sent again replaces the first.
func (c *uploadcare) multipartPart(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Expose-Headers", "ETag")
	uuid := r.PathValue("uuid")
	n, err := strconv.Atoi(r.PathValue("part"))
	c.mu.Lock()
	p := c.pending[uuid]
	c.mu.Unlock()
	if p == nil || err != nil || n < 1 || n > len(p.parts) {
		http.Error(w, "NoSuchUpload: the multipart upload or part does not exist", http.StatusNotFound)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, c.e.opts.MaxBodyBytes)
	b, err := c.e.store.put(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		http.Error(w, "EntityTooLarge", http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "IncompleteBody: "+err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	if c.pending[uuid] != p { // completed meanwhile
		c.mu.Unlock()
		c.e.store.remove(b.ID)
		http.Error(w, "NoSuchUpload: the multipart upload was completed", http.StatusNotFound)
		return
	}
	old := p.parts[n-1]
	p.parts[n-1] = &b
	c.mu.Unlock()
	if old != nil {
		c.e.store.remove(old.ID)
	}
	w.Header().Set("ETag", `"`+b.MD5+`"`)
	w.WriteHeader(http.StatusOK)
}

// multipartComplete is POST /multipart/complete/: the parts, in order,
// become the file, answered with its info.
func (c *uploadcare) multipartComplete(w http.ResponseWriter, r *http.Request) error {
	form, err := c.readForm(w, r, 0, false)
	if err != nil {
		return err
	}
	if err := c.checkPubKey("UPLOADCARE_PUB_KEY", form.get("UPLOADCARE_PUB_KEY")); err != nil {
		return err
	}
	uuid := form.get("uuid")
	if uuid == "" {
		return ucErrorf(http.StatusBadRequest, "MultipartFileIdRequiredError", "uuid is required.")
	}
	// Taking the upload out of the map makes completion single-shot; a
	// failure puts it back so the client can send what is missing.
	c.mu.Lock()
	p := c.pending[uuid]
	delete(c.pending, uuid)
	_, done := c.files[uuid]
	var received int64
	var parts []blob
	if p != nil {
		for _, b := range p.parts {
			if b != nil {
				received += b.Size
				parts = append(parts, *b)
			}
		}
	}
	c.mu.Unlock()
	restore := func() {
		c.mu.Lock()
		c.pending[uuid] = p
		c.mu.Unlock()
	}
	switch {
	case p == nil && done:
		return ucErrorf(http.StatusBadRequest, "MultipartFileAlreadyUploadedError", "File is already uploaded.")
	case p == nil:
		return ucErrorf(http.StatusNotFound, "MultipartFileNotFoundError", "File is not found.")
	case received > p.size:
		restore()
		return ucErrorf(http.StatusBadRequest, "MultipartUploadSizeTooLargeError", "Uploaded size is more than expected.")
	case received < p.size || len(parts) < len(p.parts):
		restore()
		return ucErrorf(http.StatusBadRequest, "MultipartUploadSizeTooSmallError", "File size mismatch. Not all parts uploaded?")
	}
	b, err := c.concat(parts)
	if err != nil {
		restore()
		return err
	}
	f, err := c.newFile(b, p.filename, p.contentType, p.store, p.metadata)
	if err != nil {
		c.e.store.remove(b.ID)
		restore()
		return err
	}
	f.UUID = p.uuid // the client already knows it from start
	snaps, err := c.add(f)
	if err != nil {
		c.e.store.remove(b.ID)
		restore()
		return err
	}
	for _, part := range parts {
		c.e.store.remove(part.ID)
	}
	writeJSON(w, http.StatusOK, uploadInfoOf(snaps[0]))
	c.webhook(r, "file.uploaded", apiInitiator(), snaps)
	return nil
}

// concat stores the parts one after the other as a new blob.
func (c *uploadcare) concat(parts []blob) (blob, error) {
	readers := make([]io.Reader, 0, len(parts))
	for _, part := range parts {
		rc, err := c.e.store.open(part.ID)
		if err != nil {
			return blob{}, fmt.Errorf("join multipart parts: %w", err)
		}
		defer rc.Close()
		readers = append(readers, rc)
	}
	return c.e.store.put(io.MultiReader(readers...))
}

// createGroup is POST /group/ (§2.6): files[] (JS) or files[N] (Python),
// each a UUID optionally followed by "/-/" and CDN operations.
func (c *uploadcare) createGroup(w http.ResponseWriter, r *http.Request) error {
	form, err := c.readForm(w, r, 0, false)
	if err != nil {
		return err
	}
	if err := c.checkPubKey("pub_key", form.get("pub_key")); err != nil {
		return err
	}
	if err := c.checkSignature(form); err != nil {
		return err
	}
	members := groupMembers(form.pairs)
	if len(members) == 0 {
		return ucErrorf(http.StatusBadRequest, "GroupFilesInvalidError", "No files[N] parameters found.")
	}
	for i, m := range members {
		uuid, effects, ok := parseGroupMember(m)
		if !ok {
			return ucErrorf(http.StatusBadRequest, "GroupFileURLParsingFailedError", "This is not valid file url: %s.", m)
		}
		if _, ok := c.live(uuid); !ok {
			return ucErrorf(http.StatusBadRequest, "GroupFilesNotFoundError", "Some files not found.")
		}
		members[i] = uuid
		if effects != "" {
			members[i] += "/-/" + effects
		}
	}
	g := &ucGroup{ID: fmt.Sprintf("%s~%d", newUUID(), len(members)), Created: c.e.now().UTC(), Files: members}
	c.mu.Lock()
	c.groups[g.ID] = g
	if err := c.saveLocked(); err != nil {
		delete(c.groups, g.ID)
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, c.groupAnswer(r, g))
	return nil
}

// groupMembers orders files[N] by N and files[] by arrival.
func groupMembers(pairs [][2]string) []string {
	type member struct {
		index int
		value string
	}
	var ms []member
	for _, p := range pairs {
		inner, ok := strings.CutPrefix(p[0], "files[")
		if !ok || !strings.HasSuffix(inner, "]") {
			continue
		}
		inner = strings.TrimSuffix(inner, "]")
		index := -1
		if inner != "" {
			n, err := strconv.Atoi(inner)
			if err != nil || n < 0 {
				continue
			}
			index = n
		}
		ms = append(ms, member{index, p[1]})
	}
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].index < ms[j].index })
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.value
	}
	return out
}

// parseGroupMember splits "uuid[/][-/ops…]", or a CDN URL of that shape,
// into the UUID and the operations.
func parseGroupMember(m string) (uuid, effects string, ok bool) {
	if i := strings.Index(m, "://"); i >= 0 {
		rest := m[i+3:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return "", "", false
		}
		m = rest[j+1:]
	}
	uuid, rest, _ := strings.Cut(m, "/")
	if !ucUUIDPattern.MatchString(uuid) {
		return "", "", false
	}
	switch {
	case rest == "":
		return uuid, "", true
	case strings.HasPrefix(rest, "-/"):
		return uuid, rest[2:], true
	}
	return "", "", false
}

// groupInfo is GET /group/info/?pub_key=&group_id=.
func (c *uploadcare) groupInfo(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := c.checkPubKey("pub_key", q.Get("pub_key")); err != nil {
		return err
	}
	id := q.Get("group_id")
	if id == "" {
		return ucErrorf(http.StatusBadRequest, "GroupIdRequiredError", "group_id is required.")
	}
	c.mu.Lock()
	g := c.groups[id]
	c.mu.Unlock()
	if g == nil {
		return ucErrorf(http.StatusNotFound, "GroupNotFoundError", "group_id is invalid.")
	}
	writeJSON(w, http.StatusOK, c.groupAnswer(r, g))
	return nil
}

// groupAnswer describes a group; a member removed since is null.
func (c *uploadcare) groupAnswer(r *http.Request, g *ucGroup) any {
	type member struct {
		ucUploadInfo
		DefaultEffects string `json:"default_effects"`
	}
	files := make([]*member, len(g.Files))
	for i, m := range g.Files {
		uuid, effects, _ := strings.Cut(m, "/-/")
		if f, ok := c.live(uuid); ok {
			files[i] = &member{uploadInfoOf(f), effects}
		}
	}
	base := strings.TrimSuffix(c.e.opts.UploadcareCDNURL, "/")
	if base == "" {
		base = baseURL(r) + "/uploadcare/cdn"
	}
	return struct {
		ID              string    `json:"id"`
		DatetimeCreated string    `json:"datetime_created"`
		DatetimeStored  *string   `json:"datetime_stored"`
		FilesCount      int       `json:"files_count"`
		CDNURL          string    `json:"cdn_url"`
		URL             string    `json:"url"`
		Files           []*member `json:"files"`
	}{g.ID, ucTime(g.Created), nil, len(g.Files), base + "/" + g.ID + "/", baseURL(r) + "/uploadcare/api/groups/" + g.ID + "/", files}
}

// ---- REST API ----

// ucRESTError is a REST API error, {"detail": …}.
type ucRESTError struct {
	status int
	detail string
}

func (e *ucRESTError) Error() string { return e.detail }

func restErrorf(status int, format string, args ...any) error {
	return &ucRESTError{status: status, detail: fmt.Sprintf(format, args...)}
}

// writeRESTError answers {"detail": …}; a 406 is plain JSON because no API
// version was agreed on.
func writeRESTError(w http.ResponseWriter, status int, detail string) {
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	ct := ucRESTType
	if status == http.StatusNotAcceptable {
		ct = "application/json"
	}
	writeJSONAs(w, status, ct, map[string]string{"detail": detail})
}

func restFault(w http.ResponseWriter, _ *http.Request, status int, msg string) {
	writeRESTError(w, status, msg)
}

// ucRESTHandler gets the body already read (the signature covers it) and
// the request's ID for webhook initiators.
type ucRESTHandler func(w http.ResponseWriter, r *http.Request, body []byte) error

// serveREST checks the API version and the credentials, in that order as
// at Uploadcare (content negotiation before authentication), and turns
// errors into {"detail": …}.
func (c *uploadcare) serveREST(h ucRESTHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.sweep(r)
		err := c.handleREST(w, r, h)
		if err == nil {
			return
		}
		var re *ucRESTError
		if !errors.As(err, &re) {
			c.e.log.Error("emulator: uploadcare REST request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			re = &ucRESTError{status: http.StatusInternalServerError, detail: "Internal server error."}
		}
		writeRESTError(w, re.status, re.detail)
	})
}

func (c *uploadcare) handleREST(w http.ResponseWriter, r *http.Request, h ucRESTHandler) error {
	if !acceptsV07(r.Header.Values("Accept")) {
		return restErrorf(http.StatusNotAcceptable, "Incorrect Accept header provided. Make sure to specify API version. Refer to REST API docs for details.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.e.opts.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return restErrorf(http.StatusRequestEntityTooLarge, "Request body is too large.")
	case err != nil:
		return restErrorf(http.StatusBadRequest, "Could not read the request body.")
	}
	if err := c.authenticateREST(r, body); err != nil {
		return err
	}
	return h(w, r, body)
}

func acceptsV07(values []string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if mediaType(strings.TrimSpace(part)) == ucRESTType {
				return true
			}
		}
	}
	return false
}

// authenticateREST accepts both schemes of §4.2. Uploadcare refuses
// Uploadcare.Simple over plain HTTP; the emulator, which is plain HTTP,
// accepts it so that SDKs configured for Simple auth work against it.
func (c *uploadcare) authenticateREST(r *http.Request, body []byte) error {
	invalid := restErrorf(http.StatusUnauthorized, "Incorrect authentication credentials.")
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	pub, proof, ok := strings.Cut(strings.TrimSpace(cred), ":")
	if !ok || (scheme != "Uploadcare" && scheme != "Uploadcare.Simple") {
		return invalid
	}
	if pub != c.proj.PublicKey {
		return restErrorf(http.StatusUnauthorized, "Public key %s not found.", pub)
	}
	if scheme == "Uploadcare.Simple" {
		if !signer.Equal(proof, c.proj.SecretKey) {
			return invalid
		}
		return nil
	}
	// The JS client sends X-Uploadcare-Date because browsers cannot set
	// Date; the other SDKs send Date. The raw string is what was signed.
	date := r.Header.Get("X-Uploadcare-Date")
	if date == "" {
		date = r.Header.Get("Date")
	}
	if date == "" {
		return restErrorf(http.StatusUnauthorized, "Signed requests need a Date or X-Uploadcare-Date header.")
	}
	when, ok := parseRESTDate(date)
	if !ok {
		return restErrorf(http.StatusUnauthorized, "Invalid date header %q: use the RFC 1123 format, e.g. Mon, 01 Jan 2024 00:00:00 GMT.", date)
	}
	if skew := c.e.now().Sub(when); skew > ucDateSkew || skew < -ucDateSkew {
		return restErrorf(http.StatusUnauthorized, "Date header %q is more than 15 minutes away from the server time.", date)
	}
	proof = strings.ToLower(proof)
	ct := r.Header.Get("Content-Type")
	for _, uri := range signedURIs(r) {
		if signer.Equal(proof, signer.SignUploadcareREST(c.proj.SecretKey, r.Method, body, ct, date, uri)) {
			return nil
		}
	}
	return restErrorf(http.StatusUnauthorized, "Invalid signature. Please check your Secret key.")
}

// ucDateLayouts are the date forms SDKs send (§4.2): RFC 1123 (JS, Go,
// PHP, Ruby), pyuploadcare's "Mon, 01 Jan 2024, 00:00:00 GMT", and the
// other HTTP date forms.
var ucDateLayouts = []string{
	time.RFC1123,
	time.RFC1123Z,
	"Mon, 02 Jan 2006, 15:04:05 MST",
	"Mon, 2 Jan 2006 15:04:05 MST",
	time.RFC850,
	time.ANSIC,
}

func parseRESTDate(s string) (time.Time, bool) {
	for _, layout := range ucDateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// signedURIs are the request URIs a signature may cover: the raw target
// exactly as received and, when the emulator is reached under a prefix, the
// part from the API root on (what the service's own URI would be).
func signedURIs(r *http.Request) []string {
	raw := r.RequestURI
	if i := strings.Index(raw, "://"); i >= 0 { // absolute form, via a proxy
		if j := strings.IndexByte(raw[i+3:], '/'); j >= 0 {
			raw = raw[i+3+j:]
		}
	}
	uris := []string{raw}
	const root = "/uploadcare/api"
	if i := strings.Index(raw, root+"/"); i >= 0 {
		uris = append(uris, raw[i+len(root):])
	}
	return uris
}

func methodNotAllowed(r *http.Request) error {
	return restErrorf(http.StatusMethodNotAllowed, "Method %q not allowed.", r.Method)
}

// file is GET /files/{uuid}/. A removed file is still described, with
// datetime_removed set; an unknown one is 404.
func (c *uploadcare) file(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(r)
	}
	c.mu.Lock()
	f := c.files[r.PathValue("uuid")]
	var snap ucFile
	if f != nil {
		snap = *f
	}
	c.mu.Unlock()
	if f == nil {
		return restErrorf(http.StatusNotFound, "Not found.")
	}
	withAppdata := slices.Contains(strings.Split(r.URL.Query().Get("include"), ","), "appdata")
	writeJSONAs(w, http.StatusOK, ucRESTType, c.fileObject(r, snap, withAppdata))
	return nil
}

// storage is PUT (store) and DELETE (delete) /files/{uuid}/storage/.
func (c *uploadcare) storage(w http.ResponseWriter, r *http.Request, _ []byte) error {
	remove := r.Method == http.MethodDelete
	if !remove && r.Method != http.MethodPut {
		return methodNotAllowed(r)
	}
	f, changed, err := c.setStorage(r.PathValue("uuid"), remove)
	if errors.Is(err, errUCNotFound) {
		return restErrorf(http.StatusNotFound, "Not found.")
	}
	if err != nil {
		return err
	}
	writeJSONAs(w, http.StatusOK, ucRESTType, c.fileObject(r, f, false))
	if changed {
		c.webhook(r, storageEvent(remove), apiInitiator(), []ucFile{f})
	}
	return nil
}

func storageEvent(remove bool) string {
	if remove {
		return "file.deleted"
	}
	return "file.stored"
}

// batchStorage is PUT and DELETE /files/storage/ with a JSON array of up
// to 100 UUIDs; files it cannot act on are listed under problems.
func (c *uploadcare) batchStorage(w http.ResponseWriter, r *http.Request, body []byte) error {
	remove := r.Method == http.MethodDelete
	if !remove && r.Method != http.MethodPut {
		return methodNotAllowed(r)
	}
	var ids []string
	if err := json.Unmarshal(body, &ids); err != nil {
		return restErrorf(http.StatusBadRequest, "Expected a list of file UUIDs.")
	}
	if len(ids) > ucMaxBatchFiles {
		return restErrorf(http.StatusBadRequest, "List of UUIDs can not be longer than %d.", ucMaxBatchFiles)
	}
	result := []ucFileObject{}
	problems := map[string]string{}
	var changed []ucFile
	for _, id := range ids {
		if !ucUUIDPattern.MatchString(id) {
			problems[id] = "Invalid"
			continue
		}
		f, ch, err := c.setStorage(id, remove)
		switch {
		case errors.Is(err, errUCNotFound):
			problems[id] = "Missing in the project"
			continue
		case err != nil:
			return err
		}
		result = append(result, c.fileObject(r, f, false))
		if ch {
			changed = append(changed, f)
		}
	}
	writeJSONAs(w, http.StatusOK, ucRESTType, map[string]any{"status": "ok", "problems": problems, "result": result})
	c.webhook(r, storageEvent(remove), apiInitiator(), changed)
	return nil
}

// ---- CDN ----

// cdn serves a file's bytes for /{uuid}/[-/operations/…][filename]:
// operations and the name are ignored. A group's members are reached as
// /{uuid}~{n}/nth/{i}/. Faults do not apply: the CDN is not an API.
func (c *uploadcare) cdn(w http.ResponseWriter, r *http.Request) {
	c.sweep(r)
	w.Header().Set("Access-Control-Allow-Origin", "*")
	id, rest := r.PathValue("uuid"), r.PathValue("rest")
	if strings.Contains(id, "~") {
		id = c.groupMember(id, rest)
	}
	f, ok := c.live(id)
	if !ok {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	rc, err := c.e.store.open(f.Blob)
	if err != nil { // deleted meanwhile
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", f.MimeType)
	h.Set("ETag", `"`+f.UUID+`"`)
	// Revalidate every time, so a file deleted through REST stops being
	// served at once, as tests expect.
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", f.Uploaded, rc)
}

// groupMember resolves "nth/{i}/…" inside a group to the member's UUID,
// or "" when there is none.
func (c *uploadcare) groupMember(groupID, rest string) string {
	segs := strings.Split(rest, "/")
	if len(segs) < 2 || segs[0] != "nth" {
		return ""
	}
	i, err := strconv.Atoi(segs[1])
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[groupID]
	if g == nil || err != nil || i < 0 || i >= len(g.Files) {
		return ""
	}
	uuid, _, _ := strings.Cut(g.Files[i], "/")
	return uuid
}

// ---- webhooks ----

type ucInitiatorDetail struct {
	RequestID      *string `json:"request_id"`
	AddonName      *string `json:"addon_name"`
	SourceFileUUID *string `json:"source_file_uuid"`
}

type ucInitiator struct {
	Type   string            `json:"type"`
	Detail ucInitiatorDetail `json:"detail"`
}

// apiInitiator is the initiator of changes made by an API request, which
// gets a fresh request ID as at Uploadcare.
func apiInitiator() ucInitiator {
	id := newUUID()
	return ucInitiator{Type: "api", Detail: ucInitiatorDetail{RequestID: &id}}
}

type ucHook struct {
	ID            int    `json:"id"`
	ProjectID     int    `json:"project_id"`
	ProjectPubKey string `json:"project_pub_key"`
	Target        string `json:"target"`
	Event         string `json:"event"`
	IsActive      bool   `json:"is_active"`
	Version       string `json:"version"`
	CreatedAt     string `json:"created_at"`
	UpdatedAt     string `json:"updated_at"`
}

// webhook sends event for each file to every target (§5.3), signed with
// X-Uc-Signature when the project has a secret (§5.4). Each target is a
// subscription per event, so the hook id is stable per (target, event).
func (c *uploadcare) webhook(r *http.Request, event string, init ucInitiator, files []ucFile) {
	created := ucTime(c.hooksCreated)
	for _, f := range files {
		data := c.fileObject(r, f, true)
		for i, target := range c.proj.WebhookTargets {
			body, err := marshalJSON(struct {
				Initiator ucInitiator  `json:"initiator"`
				Hook      ucHook       `json:"hook"`
				Data      ucFileObject `json:"data"`
				File      string       `json:"file"`
			}{init, ucHook{
				ID:            i*len(ucEvents) + slices.Index(ucEvents, event) + 1,
				ProjectID:     ucProjectID,
				ProjectPubKey: c.proj.PublicKey,
				Target:        target,
				Event:         event,
				IsActive:      true,
				Version:       "0.7",
				CreatedAt:     created,
				UpdatedAt:     created,
			}, data, c.cdnURL(r, f)})
			if err != nil {
				c.e.log.Error("emulator: encode uploadcare webhook", "err", err)
				return
			}
			h := http.Header{}
			h.Set("Content-Type", "application/json")
			if c.proj.WebhookSecret != "" {
				h.Set("X-Uc-Signature", signer.SignUploadcareWebhook(c.proj.WebhookSecret, body))
			}
			c.e.notify(target, body, h)
		}
	}
}
