package emulator

import (
	"crypto/sha1" //nolint:gosec // Cloudinary's protocol is defined over SHA-1.
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/brokerdev/broker/signer"
)

// CloudinaryAccount is the one Cloudinary account the emulator serves.
type CloudinaryAccount struct {
	CloudName, APIKey, APISecret string
	// Algorithm signs upload responses and notifications, like the account
	// setting at Cloudinary; empty means SHA-1. Upload signatures are
	// accepted in either digest whatever it says, as Cloudinary does.
	Algorithm signer.Algorithm
}

// cloudinary emulates the Upload API, the Admin API's resource lookup and
// delivery (specs/cloudinary.md §10).
type cloudinary struct {
	e    *Emulator
	acct CloudinaryAccount

	mu     sync.Mutex
	assets map[string]*cldAsset // by cldKey
}

// cldAsset is one stored asset; it is also the persisted form.
type cldAsset struct {
	AssetID          string            `json:"asset_id"`
	PublicID         string            `json:"public_id"`
	ResourceType     string            `json:"resource_type"`
	Type             string            `json:"type"`
	Format           string            `json:"format,omitempty"`
	ContentType      string            `json:"content_type"`
	Version          int64             `json:"version"`
	VersionID        string            `json:"version_id"`
	Width            int               `json:"width,omitempty"`
	Height           int               `json:"height,omitempty"`
	Bytes            int64             `json:"bytes"`
	ETag             string            `json:"etag"`
	CreatedAt        time.Time         `json:"created_at"`
	Tags             []string          `json:"tags"`
	Context          map[string]string `json:"context,omitempty"`
	Folder           string            `json:"folder,omitempty"`
	AssetFolder      string            `json:"asset_folder"`
	OriginalFilename string            `json:"original_filename"`
	Blob             string            `json:"blob"`
}

const cldStateName = "cloudinary"

type cldState struct {
	Assets []*cldAsset `json:"assets"`
}

// Public IDs are unique per resource type and delivery type, as at Cloudinary.
func cldKey(resourceType, typ, publicID string) string {
	return resourceType + "/" + typ + "/" + publicID
}

func newCloudinary(e *Emulator, acct CloudinaryAccount) (*cloudinary, error) {
	if acct.CloudName == "" || acct.APIKey == "" || acct.APISecret == "" {
		return nil, errors.New("emulator: cloudinary account needs a cloud name, an API key and an API secret")
	}
	if acct.Algorithm == "" {
		acct.Algorithm = signer.SHA1
	}
	alg, err := signer.ParseAlgorithm(string(acct.Algorithm))
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	acct.Algorithm = alg
	c := &cloudinary{e: e, acct: acct, assets: map[string]*cldAsset{}}
	var st cldState
	if err := e.store.loadState(cldStateName, &st); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	for _, a := range st.Assets {
		c.assets[cldKey(a.ResourceType, a.Type, a.PublicID)] = a
	}
	return c, nil
}

func (c *cloudinary) routes(mux *http.ServeMux) {
	fail := func(w http.ResponseWriter, _ *http.Request, status int, msg string) { writeCldError(w, status, msg) }
	api := func(h cldHandler) http.Handler { return c.e.withFaults(c.serve(h), fail) }
	mux.Handle("POST /cloudinary/v1_1/{cloud}/{resource_type}/upload", api(c.upload))
	mux.Handle("POST /cloudinary/v1_1/{cloud}/{resource_type}/destroy", api(c.destroy))
	mux.Handle("GET /cloudinary/v1_1/{cloud}/resources/{resource_type}/{type}/{public_id...}", api(c.resource))
	mux.HandleFunc("OPTIONS /cloudinary/v1_1/", preflight)
	mux.Handle("GET /cloudinary/_emulator/assets", c.serve(c.list))
	mux.Handle("GET /cloudinary/{cloud}/{resource_type}/{type}/{rest...}", c.serve(c.deliver))
}

// cldError is an answer in Cloudinary's error shape.
type cldError struct {
	status int
	msg    string
}

func (e *cldError) Error() string { return e.msg }

func cldErrorf(status int, format string, args ...any) error {
	return &cldError{status: status, msg: fmt.Sprintf(format, args...)}
}

// writeCldError writes {"error":{"message":…}} and, as Cloudinary does,
// the same text in X-Cld-Error. The message may quote what the client sent;
// control characters become spaces, since in a header line they would
// break the client's reading of the whole answer.
func writeCldError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("X-Cld-Error", strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, msg))
	writeJSON(w, status, map[string]any{"error": map[string]string{"message": msg}})
}

type cldHandler func(w http.ResponseWriter, r *http.Request) error

// serve turns a handler's error into Cloudinary's error answer; errors that
// are not a cldError are bugs or storage failures, hence 500.
func (c *cloudinary) serve(h cldHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		err := h(w, r)
		if err == nil {
			return
		}
		var ce *cldError
		if !errors.As(err, &ce) {
			c.e.log.Error("emulator: cloudinary request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			ce = &cldError{status: http.StatusInternalServerError, msg: "General Error: " + err.Error()}
		}
		writeCldError(w, ce.status, ce.msg)
	})
}

func (c *cloudinary) checkCloud(r *http.Request) error {
	if cloud := r.PathValue("cloud"); cloud != c.acct.CloudName {
		return cldErrorf(http.StatusUnauthorized, "Invalid cloud_name %s", cloud)
	}
	return nil
}

// ---- request bodies ----

// cldForm is a parsed Upload API request: its text fields, with array
// fields folded, and the file when it came as a multipart part.
type cldForm struct {
	store    *store
	fields   map[string]string
	file     *blob
	filename string
}

// release drops the spooled file unless the upload kept it (file = nil).
func (f *cldForm) release() {
	if f.file != nil {
		f.store.remove(f.file.ID)
		f.file = nil
	}
}

// readForm parses multipart and urlencoded bodies, and treats a body with
// no Content-Type as urlencoded because the Go SDK sends those (spec §2.2).
// With wantFile, a multipart file part is streamed into the store instead
// of memory; the caller must release the form.
func (c *cloudinary) readForm(w http.ResponseWriter, r *http.Request, wantFile bool) (*cldForm, error) {
	r.Body = http.MaxBytesReader(w, r.Body, c.e.opts.MaxBodyBytes)
	form := &cldForm{store: c.e.store}
	var pairs [][2]string
	var err error
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case mt == "multipart/form-data":
		pairs, err = c.readMultipart(r, form, wantFile)
	case ct == "" || mt == "application/x-www-form-urlencoded":
		pairs, err = readURLEncoded(r.Body)
	default:
		return nil, cldErrorf(http.StatusBadRequest, "Unsupported Content-Type %s; send multipart/form-data or application/x-www-form-urlencoded", ct)
	}
	if err != nil {
		form.release()
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, cldErrorf(http.StatusBadRequest, "File size too large. Maximum is %d.", tooBig.Limit)
		}
		return nil, cldErrorf(http.StatusBadRequest, "Invalid request body: %v", err)
	}
	form.fields = foldArrays(pairs)
	return form, nil
}

// readMultipart reads the fields and, with wantFile, stores the first file
// part, which Cloudinary expects under the name "file".
func (c *cloudinary) readMultipart(r *http.Request, form *cldForm, wantFile bool) ([][2]string, error) {
	maxFiles := 0
	if wantFile {
		maxFiles = 1
	}
	pairs, files, err := c.e.store.readMultipart(r, func(name string) bool { return name == "file" }, maxFiles)
	if len(files) > 0 {
		form.file, form.filename = &files[0].Blob, files[0].Filename
	}
	return pairs, err
}

func readURLEncoded(body io.Reader) ([][2]string, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	vals, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, fmt.Errorf("urlencoded body: %w", err)
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pairs [][2]string
	for _, k := range keys {
		for _, v := range vals[k] {
			pairs = append(pairs, [2]string{k, v})
		}
	}
	return pairs, nil
}

// foldArrays turns array fields "k[]" and "k[n]" into one comma-joined "k"
// (ordered by n, else by arrival), which is how Cloudinary reads and signs
// them (spec §1.3). A plain name sent twice keeps its last value.
func foldArrays(pairs [][2]string) map[string]string {
	type item struct {
		index int
		value string
	}
	out := map[string]string{}
	arrays := map[string][]item{}
	for _, p := range pairs {
		name, value := p[0], p[1]
		if open := strings.IndexByte(name, '['); open > 0 && strings.HasSuffix(name, "]") {
			inner := name[open+1 : len(name)-1]
			index, err := strconv.Atoi(inner)
			if inner == "" || (err == nil && index >= 0) {
				if inner == "" {
					index = -1 // keeps arrival order under the stable sort
				}
				arrays[name[:open]] = append(arrays[name[:open]], item{index, value})
				continue
			}
		}
		out[name] = value
	}
	for name, items := range arrays {
		sort.SliceStable(items, func(i, j int) bool { return items[i].index < items[j].index })
		values := make([]string, len(items))
		for i, it := range items {
			values[i] = it.value
		}
		out[name] = strings.Join(values, ",")
	}
	return out
}

// ---- authentication ----

// cldUnsigned are the fields Cloudinary leaves out of the string to sign.
var cldUnsigned = map[string]bool{"file": true, "cloud_name": true, "resource_type": true, "api_key": true, "signature": true}

// authenticate applies Cloudinary's order (spec §10): an Authorization
// header, else a signature, else an unsigned preset (when allowed). The
// emulator has no presets, so every unsigned upload is refused.
func (c *cloudinary) authenticate(r *http.Request, f map[string]string, unsignedAllowed bool) error {
	if r.Header.Get("Authorization") != "" {
		return c.checkBasic(r)
	}
	sig := f["signature"]
	if sig == "" {
		switch {
		case unsignedAllowed && f["upload_preset"] != "":
			return cldErrorf(http.StatusBadRequest, "Upload preset not found")
		case unsignedAllowed:
			return cldErrorf(http.StatusBadRequest, "Upload preset must be specified when using unsigned upload")
		case f["api_key"] == "":
			return cldErrorf(http.StatusBadRequest, "Missing required parameter - api_key")
		default:
			return cldErrorf(http.StatusBadRequest, "Missing required parameter - signature")
		}
	}
	key := f["api_key"]
	if key == "" {
		return cldErrorf(http.StatusBadRequest, "Missing required parameter - api_key")
	}
	if key != c.acct.APIKey {
		return cldErrorf(http.StatusUnauthorized, "Unknown API key %s", key)
	}
	if f["timestamp"] == "" {
		return cldErrorf(http.StatusBadRequest, "Missing required parameter - timestamp")
	}
	params := map[string]string{}
	for k, v := range f {
		if !cldUnsigned[k] {
			params[k] = v
		}
	}
	if ok, stringToSign := c.verifySignature(params, sig); !ok {
		return cldErrorf(http.StatusUnauthorized, "Invalid Signature %s. String to sign - '%s'.", sig, stringToSign)
	}
	return c.checkTimestamp(f["timestamp"])
}

// verifySignature checks an upload signature and, on failure, returns the
// (v2) string the server signed, for the error message.
//
// The server signs what it received, so a field posted with an empty value
// counts as "name=" (spec §1.3, §10), whereas signer drops empty values as
// the SDKs do when signing. Requests without empty fields, which is every
// SDK request, are checked by signer; the rare rest by serverStringToSign.
func (c *cloudinary) verifySignature(params map[string]string, sig string) (bool, string) {
	hasEmpty := false
	for _, v := range params {
		hasEmpty = hasEmpty || v == ""
	}
	if !hasEmpty {
		if signer.VerifyCloudinaryUpload(params, c.acct.APISecret, sig) != 0 {
			return true, ""
		}
		return false, signer.CloudinaryStringToSign(params, 2)
	}
	var newHash func() hash.Hash
	switch len(sig) {
	case 2 * sha1.Size:
		newHash = sha1.New
	case 2 * sha256.Size:
		newHash = sha256.New
	}
	for _, version := range []int{2, 1} {
		if newHash == nil {
			break
		}
		h := newHash()
		h.Write([]byte(serverStringToSign(params, version) + c.acct.APISecret))
		if signer.Equal(strings.ToLower(sig), hex.EncodeToString(h.Sum(nil))) {
			return true, ""
		}
	}
	return false, serverStringToSign(params, 2)
}

// serverStringToSign is the string Cloudinary's server builds: like
// signer.CloudinaryStringToSign, but keeping empty values.
func serverStringToSign(params map[string]string, version int) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = k + "=" + params[k]
		if version >= 2 {
			pairs[i] = strings.ReplaceAll(pairs[i], "&", "%26")
		}
	}
	return strings.Join(pairs, "&")
}

// checkTimestamp refuses a signed timestamp further than StaleAfter from
// now, in either direction: Cloudinary documents only the past limit, but
// a far-future timestamp would make a signature live arbitrarily long.
func (c *cloudinary) checkTimestamp(raw string) error {
	ts, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return cldErrorf(http.StatusBadRequest, "Invalid timestamp %s", raw)
	}
	reported, now, limit := time.Unix(ts, 0).UTC(), c.e.now(), c.e.opts.StaleAfter
	when := reported.Format("2006-01-02 15:04:05 -0700")
	switch {
	case now.Sub(reported) > limit:
		return cldErrorf(http.StatusBadRequest, "Stale request - reported time is %s which is more than %s ago", when, humanDuration(limit))
	case reported.Sub(now) > limit:
		return cldErrorf(http.StatusBadRequest, "Stale request - reported time is %s which is more than %s in the future", when, humanDuration(limit))
	}
	return nil
}

// humanDuration renders the staleness limit the way Cloudinary's message
// does ("1 hour").
func humanDuration(d time.Duration) string {
	unit, n := "", int64(0)
	switch {
	case d%time.Hour == 0:
		unit, n = "hour", int64(d/time.Hour)
	case d%time.Minute == 0:
		unit, n = "minute", int64(d/time.Minute)
	case d%time.Second == 0:
		unit, n = "second", int64(d/time.Second)
	default:
		return d.String()
	}
	if n != 1 {
		unit += "s"
	}
	return fmt.Sprintf("%d %s", n, unit)
}

// checkBasic accepts HTTP Basic api_key:api_secret, which Cloudinary takes
// on the Upload API without a signature and requires on the Admin API.
func (c *cloudinary) checkBasic(r *http.Request) error {
	key, secret, ok := r.BasicAuth()
	switch {
	case !ok && r.Header.Get("Authorization") == "":
		return cldErrorf(http.StatusUnauthorized, "Must supply api_key")
	case !ok:
		return cldErrorf(http.StatusUnauthorized, "Invalid credentials: the emulator accepts HTTP Basic api_key:api_secret or a signature")
	case key != c.acct.APIKey:
		return cldErrorf(http.StatusUnauthorized, "Unknown API key %s", key)
	case !signer.Equal(secret, c.acct.APISecret):
		return cldErrorf(http.StatusUnauthorized, "api_secret mismatch")
	}
	return nil
}

// ---- upload ----

func (c *cloudinary) upload(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkCloud(r); err != nil {
		return err
	}
	requested := r.PathValue("resource_type")
	switch requested {
	case "image", "video", "raw", "auto":
	default:
		return cldErrorf(http.StatusBadRequest, "Invalid resource type %s", requested)
	}
	if r.Header.Get("Content-Range") != "" {
		return cldErrorf(http.StatusBadRequest, "Chunked uploads are not supported by the emulator; send the file in one request")
	}
	form, err := c.readForm(w, r, true)
	if err != nil {
		return err
	}
	defer form.release()
	f := form.fields
	if err := c.authenticate(r, f, true); err != nil {
		return err
	}
	if err := c.loadFileField(form); err != nil {
		return err
	}
	filename := form.filename
	if v := f["filename_override"]; v != "" {
		filename = v
	}
	kind, err := c.probe(*form.file, filename, requested)
	if err != nil {
		return err
	}
	typ := f["type"]
	switch typ {
	case "":
		typ = "upload"
	case "upload", "private", "authenticated":
	default:
		return cldErrorf(http.StatusBadRequest, "Invalid type %s", typ)
	}
	publicID, err := cldPublicID(f, filename, kind.resourceType)
	if err != nil {
		return err
	}

	now := c.e.now()
	a := &cldAsset{
		AssetID:          randomHex(16),
		PublicID:         publicID,
		ResourceType:     kind.resourceType,
		Type:             typ,
		Format:           kind.format,
		ContentType:      kind.contentType,
		Version:          now.Unix(),
		VersionID:        randomHex(16),
		Width:            kind.width,
		Height:           kind.height,
		Bytes:            form.file.Size,
		ETag:             form.file.MD5,
		CreatedAt:        now.UTC().Truncate(time.Second),
		Tags:             splitTags(f["tags"]),
		Context:          parseContext(f["context"]),
		Folder:           strings.Trim(f["folder"], "/"),
		AssetFolder:      f["asset_folder"],
		OriginalFilename: strings.TrimSuffix(path.Base(filename), path.Ext(filename)),
		Blob:             form.file.ID,
	}
	if a.AssetFolder == "" {
		a.AssetFolder = a.Folder
	}
	if filename == "" {
		a.OriginalFilename = "file" // what Cloudinary reports for data URIs
	}

	// Signed and Basic uploads overwrite by default (Cloudinary's default).
	overwrite := !isFalse(f["overwrite"])
	key := cldKey(a.ResourceType, a.Type, a.PublicID)
	c.mu.Lock()
	old := c.assets[key]
	if old != nil && !overwrite {
		existing := *old
		c.mu.Unlock()
		res := c.uploadResult(&existing, r)
		res.Existing = true
		writeJSON(w, http.StatusOK, res)
		return nil
	}
	if old != nil {
		a.AssetID = old.AssetID // asset_id is stable across versions
	}
	c.assets[key] = a
	if err := c.saveLocked(); err != nil {
		if old != nil {
			c.assets[key] = old
		} else {
			delete(c.assets, key)
		}
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()
	form.file = nil // the asset owns the bytes now
	if old != nil {
		c.e.store.remove(old.Blob)
	}

	res := c.uploadResult(a, r)
	res.Overwritten = old != nil
	writeJSON(w, http.StatusOK, res)
	if target := f["notification_url"]; target != "" {
		c.sendNotification(target, struct {
			NotificationType string `json:"notification_type"`
			*cldUploadResult
		}{"upload", res})
	}
	return nil
}

// loadFileField puts a "file" given as a form field into the store. A data
// URI is decoded; URLs are refused because the emulator works offline.
func (c *cloudinary) loadFileField(form *cldForm) error {
	if form.file != nil {
		return nil
	}
	src := form.fields["file"]
	lower := strings.ToLower(src)
	switch {
	case src == "":
		return cldErrorf(http.StatusBadRequest, "Missing required parameter - file")
	case strings.HasPrefix(lower, "data:"):
		meta, data, ok := strings.Cut(src[len("data:"):], ",")
		if !ok {
			return cldErrorf(http.StatusBadRequest, "Invalid data URI in file")
		}
		var r io.Reader = strings.NewReader(data)
		if strings.HasSuffix(strings.ToLower(meta), ";base64") {
			r = base64.NewDecoder(base64.StdEncoding, r)
		} else {
			unescaped, err := url.PathUnescape(data)
			if err != nil {
				return cldErrorf(http.StatusBadRequest, "Invalid data URI in file")
			}
			r = strings.NewReader(unescaped)
		}
		b, err := c.e.store.put(r)
		var corrupt base64.CorruptInputError
		if errors.As(err, &corrupt) {
			return cldErrorf(http.StatusBadRequest, "Invalid data URI in file: bad base64")
		}
		if err != nil {
			return err
		}
		form.file = &b
		return nil
	case strings.Contains(lower, "://"):
		return cldErrorf(http.StatusBadRequest, "Unsupported source URL: %s (the emulator is offline; send the bytes or a data URI)", src)
	default:
		return cldErrorf(http.StatusBadRequest, "Invalid URL for upload")
	}
}

// cldKind is what probing an upload found out.
type cldKind struct {
	resourceType, format, contentType string
	width, height                     int
}

var (
	cldImageExts = map[string]bool{"jpg": true, "jpeg": true, "png": true, "gif": true, "webp": true, "avif": true, "bmp": true, "tif": true, "tiff": true, "ico": true, "svg": true, "heic": true, "heif": true}
	// Cloudinary files audio under the video resource type.
	cldVideoExts = map[string]bool{"mp4": true, "mov": true, "webm": true, "mkv": true, "avi": true, "m4v": true, "ogv": true, "flv": true, "wmv": true, "3gp": true, "mpeg": true, "mpg": true, "mp3": true, "wav": true, "m4a": true, "aac": true, "flac": true, "ogg": true}
)

// probe decides the resource type, format and dimensions of stored bytes.
// Images are recognised by decoding (PNG, JPEG, GIF, with dimensions), else
// by sniffing or extension (no dimensions: the standard library cannot
// decode WebP and friends). An explicit image or video resource type must
// match the bytes, as at Cloudinary; "auto" falls back to raw.
func (c *cloudinary) probe(b blob, filename, requested string) (cldKind, error) {
	info, err := c.e.store.inspect(b.ID)
	if err != nil {
		return cldKind{}, fmt.Errorf("probe upload: %w", err)
	}
	sniffed, _, _ := mime.ParseMediaType(info.Sniffed)
	ext := strings.ToLower(strings.TrimPrefix(path.Ext(filename), "."))
	sniffedFormat := strings.TrimPrefix(sniffed[strings.IndexByte(sniffed, '/')+1:], "x-")

	var k cldKind
	switch {
	case info.ImageFormat != "":
		k = cldKind{resourceType: "image", format: info.ImageFormat, width: info.Config.Width, height: info.Config.Height}
		if info.ImageFormat == "jpeg" {
			k.format = "jpg"
		}
	case cldImageExts[ext]:
		k = cldKind{resourceType: "image", format: ext}
	case strings.HasPrefix(sniffed, "image/"):
		k = cldKind{resourceType: "image", format: sniffedFormat}
	case cldVideoExts[ext]:
		k = cldKind{resourceType: "video", format: ext}
	case strings.HasPrefix(sniffed, "video/") || strings.HasPrefix(sniffed, "audio/"):
		k = cldKind{resourceType: "video", format: sniffedFormat}
	default:
		k = cldKind{resourceType: "raw"}
	}
	switch {
	case requested == "image" && k.resourceType != "image":
		return cldKind{}, cldErrorf(http.StatusBadRequest, "Invalid image file")
	case requested == "video" && k.resourceType != "video":
		return cldKind{}, cldErrorf(http.StatusBadRequest, "Unsupported video format or file")
	case requested == "raw":
		k = cldKind{resourceType: "raw"}
	}
	if k.resourceType == "raw" {
		k.contentType = mime.TypeByExtension("." + ext)
	} else {
		k.contentType = mime.TypeByExtension("." + k.format)
	}
	if k.contentType == "" {
		k.contentType = info.Sniffed
	}
	return k, nil
}

// cldPublicID picks the public ID: public_id, else the file name with
// use_filename (plus a 6-character suffix unless unique_filename is off),
// else 20 random characters; raw assets keep the file's extension; folder
// is prefixed (spec §2.3, §10).
func cldPublicID(f map[string]string, filename, resourceType string) (string, error) {
	id := f["public_id"]
	if id == "" {
		base := path.Base(filename)
		ext := path.Ext(base)
		stem := strings.TrimSuffix(base, ext)
		if isTrue(f["use_filename"]) && filename != "" && stem != "" {
			id = strings.Map(func(r rune) rune {
				if strings.ContainsRune(cldBadIDChars+" ", r) {
					return '_'
				}
				return r
			}, stem)
			if !isFalse(f["unique_filename"]) {
				id += "_" + randomLowerAlnum(6)
			}
		} else {
			id = randomLowerAlnum(20)
		}
		if resourceType == "raw" {
			id += ext
		}
	}
	if folder := strings.Trim(f["folder"], "/"); folder != "" {
		id = folder + "/" + id
	}
	if id == "" || len(id) > 255 || strings.ContainsAny(id, cldBadIDChars) ||
		strings.HasPrefix(id, " ") || strings.HasSuffix(id, " ") ||
		strings.HasPrefix(id, "/") || strings.HasSuffix(id, "/") {
		return "", cldErrorf(http.StatusBadRequest, "public_id (%s) is invalid", id)
	}
	return id, nil
}

// cldBadIDChars may not appear in a public ID (spec §2.3).
const cldBadIDChars = `?&#\%<>+`

func isTrue(v string) bool  { return v == "1" || strings.EqualFold(v, "true") }
func isFalse(v string) bool { return v == "0" || strings.EqualFold(v, "false") }

func splitTags(s string) []string {
	tags := []string{}
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// parseContext reads "k=v|k2=v2", where "\|" and "\=" stand for literal
// characters (the node and PHP SDKs escape them so; Go does not escape).
func parseContext(s string) map[string]string {
	if s == "" {
		return nil
	}
	out := map[string]string{}
	var key, cur strings.Builder
	inValue := false
	flush := func() {
		if inValue {
			out[key.String()] = cur.String()
		} else if cur.Len() > 0 {
			out[cur.String()] = ""
		}
		key.Reset()
		cur.Reset()
		inValue = false
	}
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '\\' && i+1 < len(s) && (s[i+1] == '|' || s[i+1] == '='):
			cur.WriteByte(s[i+1])
			i++
		case ch == '=' && !inValue:
			key.WriteString(cur.String())
			cur.Reset()
			inValue = true
		case ch == '|':
			flush()
		default:
			cur.WriteByte(ch)
		}
	}
	flush()
	return out
}

// saveLocked persists every asset; c.mu must be held.
func (c *cloudinary) saveLocked() error {
	st := cldState{Assets: make([]*cldAsset, 0, len(c.assets))}
	for _, a := range c.assets {
		st.Assets = append(st.Assets, a)
	}
	sort.Slice(st.Assets, func(i, j int) bool {
		return cldKey(st.Assets[i].ResourceType, st.Assets[i].Type, st.Assets[i].PublicID) <
			cldKey(st.Assets[j].ResourceType, st.Assets[j].Type, st.Assets[j].PublicID)
	})
	return c.e.store.saveState(cldStateName, st)
}

// ---- answers ----

// cldResource is what the Upload API and the Admin API both report.
type cldResource struct {
	AssetID          string      `json:"asset_id"`
	PublicID         string      `json:"public_id"`
	Format           string      `json:"format,omitempty"`
	Version          int64       `json:"version"`
	ResourceType     string      `json:"resource_type"`
	Type             string      `json:"type"`
	CreatedAt        string      `json:"created_at"`
	Bytes            int64       `json:"bytes"`
	Width            int         `json:"width,omitempty"`
	Height           int         `json:"height,omitempty"`
	AssetFolder      string      `json:"asset_folder"`
	DisplayName      string      `json:"display_name"`
	URL              string      `json:"url"`
	SecureURL        string      `json:"secure_url"`
	Tags             []string    `json:"tags"`
	Context          *cldContext `json:"context,omitempty"`
	OriginalFilename string      `json:"original_filename,omitempty"`
}

type cldContext struct {
	Custom map[string]string `json:"custom"`
}

// cldUploadResult is the upload answer (spec §3), also the body of the
// upload notification.
type cldUploadResult struct {
	cldResource
	VersionID   string `json:"version_id"`
	Signature   string `json:"signature"`
	Pages       int    `json:"pages,omitempty"`
	ETag        string `json:"etag"`
	Placeholder bool   `json:"placeholder"`
	Folder      string `json:"folder,omitempty"`
	Existing    bool   `json:"existing,omitempty"`
	Overwritten bool   `json:"overwritten,omitempty"`
	APIKey      string `json:"api_key"`
}

func (c *cloudinary) describe(a *cldAsset, r *http.Request) cldResource {
	res := cldResource{
		AssetID:          a.AssetID,
		PublicID:         a.PublicID,
		Format:           a.Format,
		Version:          a.Version,
		ResourceType:     a.ResourceType,
		Type:             a.Type,
		CreatedAt:        a.CreatedAt.UTC().Format(time.RFC3339),
		Bytes:            a.Bytes,
		Width:            a.Width,
		Height:           a.Height,
		AssetFolder:      a.AssetFolder,
		DisplayName:      path.Base(a.PublicID),
		Tags:             a.Tags,
		OriginalFilename: a.OriginalFilename,
	}
	if res.Tags == nil {
		res.Tags = []string{}
	}
	if len(a.Context) > 0 {
		res.Context = &cldContext{Custom: a.Context}
	}
	res.URL, res.SecureURL = c.urls(a, r)
	return res
}

func (c *cloudinary) uploadResult(a *cldAsset, r *http.Request) *cldUploadResult {
	res := &cldUploadResult{
		cldResource: c.describe(a, r),
		VersionID:   a.VersionID,
		Signature:   signer.SignCloudinaryResponse(a.PublicID, a.Version, c.acct.APISecret, c.acct.Algorithm),
		ETag:        a.ETag,
		Folder:      a.Folder,
		APIKey:      c.acct.APIKey,
	}
	if a.ResourceType == "image" {
		res.Pages = 1
	}
	return res
}

// urls builds url and secure_url (spec §3). Against a plain-http emulator
// both are http, because an https URL nobody serves is of no use; with an
// https base, url is its http twin as at Cloudinary.
func (c *cloudinary) urls(a *cldAsset, r *http.Request) (plain, secure string) {
	base := strings.TrimSuffix(c.e.opts.CloudinaryDeliveryURL, "/")
	if base == "" {
		base = baseURL(r) + "/cloudinary"
	}
	name := a.PublicID
	if a.ResourceType != "raw" && a.Format != "" {
		name += "." + a.Format
	}
	secure = fmt.Sprintf("%s/%s/%s/%s/v%d/%s", base, c.acct.CloudName, a.ResourceType, a.Type, a.Version, (&url.URL{Path: name}).EscapedPath())
	plain = secure
	if rest, ok := strings.CutPrefix(secure, "https://"); ok {
		plain = "http://" + rest
	}
	return plain, secure
}

// sendNotification signs body the way Cloudinary signs webhooks (spec §4)
// and delivers it in the background.
func (c *cloudinary) sendNotification(target string, payload any) {
	body, err := marshalJSON(payload)
	if err != nil {
		c.e.log.Error("emulator: encode cloudinary notification", "err", err)
		return
	}
	ts := strconv.FormatInt(c.e.now().Unix(), 10)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Cld-Timestamp", ts)
	h.Set("X-Cld-Signature", signer.SignCloudinaryNotification(body, ts, c.acct.APISecret, c.acct.Algorithm))
	c.e.notify(target, body, h)
}

// ---- destroy, admin lookup, listing ----

func (c *cloudinary) destroy(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkCloud(r); err != nil {
		return err
	}
	rt := r.PathValue("resource_type")
	switch rt {
	case "image", "video", "raw":
	default:
		return cldErrorf(http.StatusBadRequest, "Invalid resource type %s", rt)
	}
	form, err := c.readForm(w, r, false)
	if err != nil {
		return err
	}
	defer form.release()
	f := form.fields
	if err := c.authenticate(r, f, false); err != nil {
		return err
	}
	publicID := f["public_id"]
	if publicID == "" {
		return cldErrorf(http.StatusBadRequest, "Missing required parameter - public_id")
	}
	typ := f["type"]
	if typ == "" {
		typ = "upload"
	}
	key := cldKey(rt, typ, publicID)
	c.mu.Lock()
	a := c.assets[key]
	if a != nil {
		delete(c.assets, key)
		if err := c.saveLocked(); err != nil {
			c.assets[key] = a
			c.mu.Unlock()
			return err
		}
	}
	c.mu.Unlock()
	if a == nil {
		writeJSON(w, http.StatusOK, map[string]string{"result": "not found"})
		return nil
	}
	c.e.store.remove(a.Blob)
	writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
	if target := f["notification_url"]; target != "" {
		type deleted struct {
			ResourceType string `json:"resource_type"`
			Type         string `json:"type"`
			PublicID     string `json:"public_id"`
			AssetID      string `json:"asset_id"`
			Version      int64  `json:"version"`
		}
		c.sendNotification(target, struct {
			NotificationType string    `json:"notification_type"`
			Resources        []deleted `json:"resources"`
		}{"delete", []deleted{{a.ResourceType, a.Type, a.PublicID, a.AssetID, a.Version}}})
	}
	return nil
}

// resource is the Admin API's GET resources/{resource_type}/{type}/{public_id}.
func (c *cloudinary) resource(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkCloud(r); err != nil {
		return err
	}
	if err := c.checkBasic(r); err != nil {
		return err
	}
	publicID := r.PathValue("public_id")
	c.mu.Lock()
	a := c.assets[cldKey(r.PathValue("resource_type"), r.PathValue("type"), publicID)]
	c.mu.Unlock()
	if a == nil {
		return cldErrorf(http.StatusNotFound, "Resource not found - %s", publicID)
	}
	writeJSON(w, http.StatusOK, c.describe(a, r))
	return nil
}

// list is an emulator extra for tests and the demo page: every stored
// asset, in Admin API shape, ordered by resource type, type and public ID.
func (c *cloudinary) list(w http.ResponseWriter, r *http.Request) error {
	c.mu.Lock()
	keys := make([]string, 0, len(c.assets))
	for k := range c.assets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	resources := make([]cldResource, len(keys))
	for i, k := range keys {
		resources[i] = c.describe(c.assets[k], r)
	}
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"resources": resources})
	return nil
}

// ---- delivery ----

// deliver serves an asset's original bytes for a delivery URL
// /{cloud}/{resource_type}/{type}/[s--SIG--/][transformations/][v123/]{public_id}[.ext]
// (spec §5). Transformations are accepted and ignored; the query string
// (node's ?_a= analytics token) is ignored.
func (c *cloudinary) deliver(w http.ResponseWriter, r *http.Request) error {
	notFound := cldErrorf(http.StatusNotFound, "Resource not found")
	if r.PathValue("cloud") != c.acct.CloudName {
		return notFound
	}
	rt, typ := r.PathValue("resource_type"), r.PathValue("type")
	segs := strings.Split(r.PathValue("rest"), "/")
	sig := ""
	if s := segs[0]; len(segs) > 1 && strings.HasPrefix(s, "s--") && strings.HasSuffix(s, "--") && (len(s) == 13 || len(s) == 37) {
		sig, segs = s[3:len(s)-2], segs[1:]
	}
	a, signed := c.findDelivered(rt, typ, segs)
	if a == nil {
		return notFound
	}
	if typ != "upload" && !c.validURLSignature(signed, sig) {
		return cldErrorf(http.StatusUnauthorized, "Resource is not authorized: a valid URL signature is required for type %s", typ)
	}
	rc, err := c.e.store.open(a.Blob)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", a.ContentType)
	h.Set("ETag", `"`+a.ETag+`"`)
	h.Set("Cache-Control", "public, max-age=2592000")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Unix(a.Version, 0), rc)
	return nil
}

// findDelivered finds the asset named by the path segments after the
// signature, and returns the part of the path a URL signature covers
// (everything but the version). Transformation segments cannot be told
// from folders by syntax, so each split point is tried, longest public ID
// first; a version segment marks the start of the public ID for certain.
func (c *cloudinary) findDelivered(rt, typ string, segs []string) (*cldAsset, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range segs {
		name, isVersion := segs[i:], false
		if v := name[0]; len(name) > 1 && len(v) > 1 && v[0] == 'v' && strings.Trim(v[1:], "0123456789") == "" {
			name, isVersion = name[1:], true
		}
		full := strings.Join(name, "/")
		candidates := []string{full}
		if rt != "raw" {
			if ext := path.Ext(full); ext != "" && !strings.Contains(ext, "/") {
				candidates = []string{strings.TrimSuffix(full, ext), full}
			}
		}
		for _, id := range candidates {
			if a := c.assets[cldKey(rt, typ, id)]; a != nil {
				return a, strings.Join(append(append([]string{}, segs[:i]...), full), "/")
			}
		}
		if isVersion {
			break
		}
	}
	return nil, ""
}

// validURLSignature accepts the three forms the SDKs produce: 8 characters
// of SHA-1 or SHA-256, or 32 of SHA-256 (long_url_signature).
func (c *cloudinary) validURLSignature(toSign, sig string) bool {
	if sig == "" {
		return false
	}
	for _, v := range []struct {
		alg signer.Algorithm
		n   int
	}{{signer.SHA1, 8}, {signer.SHA256, 8}, {signer.SHA256, 32}} {
		if len(sig) == v.n && signer.Equal(sig, signer.CloudinaryURLSignature(toSign, c.acct.APISecret, v.alg, v.n)) {
			return true
		}
	}
	return false
}
