// Package uploadcare is the broker's server-side client for Uploadcare: the
// REST API lookup that proves a file exists and was uploaded under the
// broker's intent, storing and deleting files, the Upload API's direct upload
// the broker's POST /upload streams through, and the CDN URL a file has.
// Signing is left to package signer; this package only speaks HTTP and sorts
// Uploadcare's answers into outcomes callers can act on: success,
// ErrNotFound, ErrUnavailable and, for uploads, *UploadError.
package uploadcare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/brokerdev/broker/signer"
)

// Uploadcare's public endpoints, used when a Client leaves the base URLs
// empty. The CDN has no fixed default: it is derived from the public key
// (specs/uploadcare.md §3), see Client.CDNBase.
const (
	DefaultUploadURL = "https://upload.uploadcare.com"
	DefaultAPIURL    = "https://api.uploadcare.com"
)

var (
	// ErrNotFound means Uploadcare says the file does not exist, or the
	// request named one that cannot exist (a malformed UUID).
	ErrNotFound = errors.New("uploadcare: file not found")
	// ErrUnavailable is wrapped by every error where Uploadcare did not
	// answer or failed: network errors, timeouts, 5xx, throttling (429),
	// rejected credentials (401, 403) and answers that cannot be read.
	// Nothing was changed at the broker's side, so the caller may retry.
	ErrUnavailable = errors.New("uploadcare: provider unavailable")
)

// restAccept selects REST API version 0.7; without it the API answers 406.
const restAccept = "application/vnd.uploadcare-v0.7+json"

// restContentType is sent (and signed) on every REST call, even without a
// body, as all official clients do: the server signs whatever Content-Type
// it received, and an absent header is a likelier source of mismatch.
const restContentType = "application/json"

// DefaultUploadTTL is how long an upload signature lasts when UploadBase is
// given no positive ttl. /base/ may check the signature only once the whole
// body has arrived, so it must outlive the slowest upload of the largest
// accepted file, not just the request's start.
const DefaultUploadTTL = 30 * time.Minute

// Client calls Uploadcare on behalf of one project. The zero values of
// UploadURL, APIURL, CDNURL, HTTP and Now mean Uploadcare's defaults.
type Client struct {
	PublicKey, SecretKey string
	// UploadURL is the Upload API base, default https://upload.uploadcare.com
	// (or the emulator's); a trailing slash is tolerated.
	UploadURL string
	// APIURL is the REST API base, default https://api.uploadcare.com. It may
	// carry a path (the emulator's /emulator/uploadcare/api): the signed
	// request URI is the full path sent on the wire, prefix included.
	APIURL string
	// CDNURL is the delivery base; empty means https://<prefix>.ucarecd.net
	// with the prefix computed from PublicKey.
	CDNURL string
	// HTTP sends the requests. nil means shared defaults: a 10 s limit on
	// REST calls, and for uploads no overall limit (a large file may take
	// minutes) but a bounded wait for the answer once the body is sent.
	// A client given here is used for both, Timeout included, so its
	// Timeout also bounds how long an upload may take.
	HTTP *http.Client
	// Now is the clock for the REST Date header and upload expiry; nil
	// means time.Now. Uploadcare refuses dates more than 15 min off.
	Now func() time.Time
}

// FileInfo is the REST API v0.7 file object (§4.3). Unknown fields are
// ignored and missing ones stay zero, since Uploadcare adds fields over time.
type FileInfo struct {
	UUID             string `json:"uuid"`
	Size             int64  `json:"size"`
	MimeType         string `json:"mime_type"`
	OriginalFilename string `json:"original_filename"`
	IsImage          bool   `json:"is_image"`
	IsReady          bool   `json:"is_ready"`
	// DatetimeUploaded is zero when Uploadcare did not report it.
	DatetimeUploaded time.Time `json:"datetime_uploaded"`
	// DatetimeStored is nil while the file is not stored (it is then
	// deleted after 24 h) and again after it was deleted.
	DatetimeStored *time.Time `json:"datetime_stored"`
	// DatetimeRemoved is set once the file was deleted.
	DatetimeRemoved *time.Time `json:"datetime_removed"`
	// OriginalFileURL is the CDN URL, nil for a deleted file. On legacy
	// accounts it may name ucarecdn.com rather than the project's host.
	OriginalFileURL *string `json:"original_file_url"`
	// URL is the file's REST API URL.
	URL string `json:"url"`
	// Metadata is the user metadata given at upload, where the broker keeps
	// its intent token.
	Metadata    map[string]string `json:"metadata"`
	ContentInfo ContentInfo       `json:"content_info"`
}

// ContentInfo is what Uploadcare detected in the file; both parts are nil
// when it reported nothing (content_info null, or not an image).
type ContentInfo struct {
	Mime  *MimeInfo  `json:"mime"`
	Image *ImageInfo `json:"image"`
}

// MimeInfo is the detected MIME type, split into its parts.
type MimeInfo struct {
	Mime    string `json:"mime"`
	Type    string `json:"type"`
	Subtype string `json:"subtype"`
}

// ImageInfo describes an image file.
type ImageInfo struct {
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Format string `json:"format"`
}

// UnmarshalJSON decodes a file object, reading its timestamps leniently:
// Uploadcare writes "2018-11-26T12:49:10.477888Z", but older answers and
// proxies have been seen without a zone, and a lookup that proves a file
// exists must not fail over a timestamp's spelling. A zone-less time is UTC.
func (f *FileInfo) UnmarshalJSON(data []byte) error {
	type plain FileInfo // no methods, so no recursion
	var wire struct {
		*plain
		DatetimeUploaded *string `json:"datetime_uploaded"`
		DatetimeStored   *string `json:"datetime_stored"`
		DatetimeRemoved  *string `json:"datetime_removed"`
	}
	wire.plain = (*plain)(f)
	if err := json.Unmarshal(data, &wire); err != nil {
		return err
	}
	for _, t := range []struct {
		name string
		in   *string
		out  **time.Time
	}{
		{"datetime_uploaded", wire.DatetimeUploaded, nil},
		{"datetime_stored", wire.DatetimeStored, &f.DatetimeStored},
		{"datetime_removed", wire.DatetimeRemoved, &f.DatetimeRemoved},
	} {
		if t.in == nil || *t.in == "" {
			continue
		}
		parsed, err := parseTime(*t.in)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if t.out == nil {
			f.DatetimeUploaded = parsed
		} else {
			*t.out = &parsed
		}
	}
	return nil
}

// timeLayouts are the spellings parseTime accepts, most common first.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"}

func parseTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised timestamp %q", s)
}

// Shared HTTP clients, so that Clients built without one still reuse
// connections to Uploadcare.
var (
	defaultHTTP = &http.Client{Timeout: 10 * time.Second}
	// defaultUploadHTTP has no overall Timeout, which would cut off a large
	// upload on a slow link; the caller's context bounds the transfer, and
	// the transport bounds the wait for an answer once the body is sent.
	defaultUploadHTTP = &http.Client{Transport: func() http.RoundTripper {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = 2 * time.Minute
		return t
	}()}
)

// maxAnswerBytes bounds what is read from Uploadcare: its JSON answers are a
// few kilobytes, and a misbehaving endpoint must not exhaust memory.
const maxAnswerBytes = 1 << 20

// File asks the REST API for one file. A 404 (or a uuid that is not a UUID)
// yields ErrNotFound; every failure of Uploadcare wraps ErrUnavailable.
func (c *Client) File(ctx context.Context, uuid string) (*FileInfo, error) {
	return c.fileCall(ctx, http.MethodGet, uuid, "", "look up")
}

// Store marks a file as stored, so Uploadcare keeps it past the 24 h an
// unstored upload lives. It answers the file object as it now is.
func (c *Client) Store(ctx context.Context, uuid string) (*FileInfo, error) {
	return c.fileCall(ctx, http.MethodPut, uuid, "storage/", "store")
}

// Delete removes a file from storage and the CDN. A 404 yields ErrNotFound,
// which a caller deleting its record may treat as done. The answer must be
// Uploadcare's file object: a 200 with anything else (a proxy's error page,
// a cut-off body) proves nothing, and taking it as done would drop the
// record of a file that may well still be stored, out of everyone's reach.
// Refusing instead keeps the record for a retry, which converges: deleting
// a deleted file answers 200 or 404 again.
func (c *Client) Delete(ctx context.Context, uuid string) error {
	_, err := c.fileCall(ctx, http.MethodDelete, uuid, "storage/", "delete")
	return err
}

// fileCall performs a REST call on one file and decodes the file object.
func (c *Client) fileCall(ctx context.Context, method, uuid, suffix, verb string) (*FileInfo, error) {
	op := fmt.Sprintf("%s file %q", verb, uuid)
	ans, err := c.restCall(ctx, method, uuid, suffix, op)
	if err != nil {
		return nil, err
	}
	var info FileInfo
	if err := json.Unmarshal(ans.body, &info); err != nil {
		return nil, fmt.Errorf("%w: %s: undecodable answer: %w", ErrUnavailable, op, err)
	}
	// An answer about another file would let a record point at something
	// the user never uploaded; treat it as a broken provider, not as proof.
	switch info.UUID {
	case uuid:
	case "":
		info.UUID = uuid
	default:
		return nil, fmt.Errorf("%w: %s: answer is about file %q", ErrUnavailable, op, info.UUID)
	}
	return &info, nil
}

// restCall sends a signed, body-less REST request for
// {APIURL}/files/{uuid}/{suffix} and returns a 200 answer. 404 yields
// ErrNotFound, anything else ErrUnavailable.
func (c *Client) restCall(ctx context.Context, method, uuid, suffix, op string) (answer, error) {
	if err := c.checkKeys(op); err != nil {
		return answer{}, err
	}
	// The UUID goes into the path; anything but a UUID could steer the
	// request elsewhere ("../webhooks"), and names no file anyway.
	if !ValidUUID(uuid) {
		return answer{}, fmt.Errorf("%w: %s: not a UUID", ErrNotFound, op)
	}
	endpoint := baseURL(c.APIURL, DefaultAPIURL) + "/files/" + uuid + "/" + suffix
	req, err := http.NewRequestWithContext(ctx, method, endpoint, nil)
	if err != nil {
		return answer{}, fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	date := c.now().UTC().Format(http.TimeFormat)
	req.Header.Set("Accept", restAccept)
	req.Header.Set("Content-Type", restContentType)
	req.Header.Set("Date", date)
	// The request URI is signed as it goes on the wire: net/http writes
	// req.URL.RequestURI() into the request line, so the two cannot differ.
	sig := signer.SignUploadcareREST(c.SecretKey, method, nil, restContentType, date, req.URL.RequestURI())
	req.Header.Set("Authorization", "Uploadcare "+c.PublicKey+":"+sig)

	ans, err := c.send(c.httpClient(defaultHTTP), req, op)
	if err != nil {
		return answer{}, err
	}
	switch ans.status {
	case http.StatusOK:
		return ans, nil
	case http.StatusNotFound:
		return answer{}, fmt.Errorf("%w: %s%s", ErrNotFound, op, c.quote(restDetail(ans.body)))
	default:
		return answer{}, fmt.Errorf("%w: %s: HTTP %d%s", ErrUnavailable, op, ans.status, c.quote(restDetail(ans.body)))
	}
}

// restDetail extracts the REST API's error message, {"detail": "…"}.
func restDetail(body []byte) string {
	var e struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Detail
}

// UploadError is the Upload API refusing an upload: a signature it does not
// accept (SignatureExpirationError, SignatureInvalidError, …), metadata it
// does not allow, a file too large (413), and so on. Status is the HTTP
// status the error stands for (the envelope's status_code, since with
// ?jsonerrors=1 Uploadcare may answer 200), Code is Uploadcare's error_code
// when it sent one, Message its human-readable text.
//
// Errors of Uploadcare itself (5xx, 429) are also ErrUnavailable: for them
// errors.Is(err, ErrUnavailable) holds and errors.As still finds the
// UploadError.
type UploadError struct {
	Status  int
	Code    string
	Message string
}

func (e *UploadError) Error() string {
	var b strings.Builder
	b.WriteString("uploadcare: upload refused: HTTP ")
	b.WriteString(strconv.Itoa(e.Status))
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %q", e.Message)
	}
	return b.String()
}

// uploadFileField is the multipart name of the file part. /base/ answers
// with the part's name as the key of the UUID (§7 pitfall 19), so the
// answer is read under this same name.
const uploadFileField = "file"

// UploadBase uploads one file through the Upload API's direct upload,
// POST {UploadURL}/base/?jsonerrors=1, signed to expire ttl from now (zero
// or less means DefaultUploadTTL). store is "0", "1", "auto" or "" for the
// project's default; metadata becomes metadata[k] fields. It returns the new
// file's UUID.
//
// The body is streamed: a goroutine writes the multipart form into a pipe
// the HTTP request reads, so memory stays flat whatever the file's size. The
// form fields come before the file so that Uploadcare can refuse a bad
// signature or key without reading the file.
//
// Errors:
//   - the reader r failing (the broker's own client cut its upload, or a
//     size limit tripped): an error wrapping r's error and nothing else, so
//     the caller can tell its own 413 or 400 from Uploadcare's failure;
//   - Uploadcare refusing the upload: *UploadError;
//   - Uploadcare failing or unreachable: ErrUnavailable (with an
//     *UploadError inside when Uploadcare said why).
func (c *Client) UploadBase(ctx context.Context, r io.Reader, filename, contentType string, store string, metadata map[string]string, ttl time.Duration) (uuid string, err error) {
	op := fmt.Sprintf("upload %q", filename)
	if err := c.checkKeys(op); err != nil {
		return "", err
	}
	switch store {
	case "", "0", "1", "auto":
	default:
		return "", fmt.Errorf("uploadcare: %s: store must be \"0\", \"1\", \"auto\" or empty, not %q", op, store)
	}
	// Checked here because Uploadcare would refuse the same metadata only
	// after the whole file went over the wire.
	if uerr := checkMetadata(metadata); uerr != nil {
		return "", uerr
	}
	if filename == "" {
		filename = "original" // what the official clients send for an unnamed file
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	if ttl <= 0 {
		ttl = DefaultUploadTTL
	}
	expire := c.now().Add(ttl).Unix()

	fields := [][2]string{
		{"UPLOADCARE_PUB_KEY", c.PublicKey},
		{"UPLOADCARE_STORE", store},
		{"signature", signer.SignUploadcareUpload(c.SecretKey, expire)},
		{"expire", strconv.FormatInt(expire, 10)},
	}
	keys := make([]string, 0, len(metadata))
	for k := range metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a stable order makes requests comparable in logs and tests
	for _, k := range keys {
		fields = append(fields, [2]string{"metadata[" + k + "]", metadata[k]})
	}

	src := &sourceReader{r: r}
	pr, pw := io.Pipe()
	form := multipart.NewWriter(pw)
	written := make(chan struct{})
	go func() {
		defer close(written)
		pw.CloseWithError(writeForm(form, fields, filename, contentType, src))
	}()

	// net/http waits for the body writer before a cancelled round trip
	// returns, and that writer may sit in a stalled source read: closing
	// the pipe when the context ends is what lets the call return on time.
	// The write end, so that the transport's pending read gets the
	// context's error rather than io.ErrClosedPipe.
	stopWatching := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	defer stopWatching()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL(c.UploadURL, DefaultUploadURL)+"/base/?jsonerrors=1", pr)
	if err == nil {
		req.Header.Set("Content-Type", form.FormDataContentType())
		var ans answer
		ans, err = c.send(c.httpClient(defaultUploadHTTP), req, op)
		if err == nil {
			uuid, err = c.uploadAnswer(op, ans)
		}
	}
	// Uploadcare may answer before reading the whole body (an early 413 or
	// signature error); closing the pipe's read end unblocks the writer.
	// Waiting for it is what makes src.err safe to read below. If the
	// context ends first the writer may still sit in r.Read; it finishes
	// when that read returns, and this call does not wait for it.
	pr.CloseWithError(errUploadEnded)
	finished := false
	select {
	case <-written:
		finished = true
	case <-ctx.Done():
		select {
		case <-written:
			finished = true
		default:
		}
	}
	if finished && src.err != nil {
		return "", fmt.Errorf("uploadcare: %s: reading the file: %w", op, src.err)
	}
	if err != nil {
		return "", err
	}
	return uuid, nil
}

// errUploadEnded stops the form writer once the exchange is over.
var errUploadEnded = errors.New("uploadcare: upload request ended")

// sourceReader remembers the error of the file's reader, the only way to
// tell it apart afterwards from the transport's and Uploadcare's failures:
// net/http does not reliably hand it back from Do.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// writeForm writes the multipart body of a /base/ upload: the fields in
// order, then the file part.
func writeForm(form *multipart.Writer, fields [][2]string, filename, contentType string, file io.Reader) error {
	for _, f := range fields {
		if f[1] == "" {
			continue // as the official clients do: an empty field means the default
		}
		if err := form.WriteField(f[0], f[1]); err != nil {
			return err
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", multipart.FileContentDisposition(uploadFileField, filename))
	h.Set("Content-Type", contentType)
	part, err := form.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, file); err != nil {
		return err
	}
	return form.Close()
}

// uploadAnswer reads /base/'s answer: {"file": "<uuid>"} on success, the
// jsonerrors envelope {"error": {"content", "status_code", "error_code"}}
// (with status 200 or the real one), or a text/plain message.
func (c *Client) uploadAnswer(op string, ans answer) (string, error) {
	var body struct {
		Error *struct {
			Content    string `json:"content"`
			StatusCode int    `json:"status_code"`
			ErrorCode  string `json:"error_code"`
		} `json:"error"`
		File string `json:"file"`
	}
	decodeErr := json.Unmarshal(ans.body, &body)
	if decodeErr == nil && body.Error != nil {
		status := body.Error.StatusCode
		if status == 0 {
			status = ans.status
		}
		if status < 400 {
			// An error envelope claiming success is still an error.
			status = http.StatusBadRequest
		}
		return "", c.uploadRefused(op, &UploadError{Status: status, Code: body.Error.ErrorCode, Message: c.redact(body.Error.Content)})
	}
	if ans.status < 200 || ans.status > 299 {
		msg := ""
		if decodeErr != nil { // text/plain, as without ?jsonerrors=1
			msg = c.redact(string(ans.body))
		}
		return "", c.uploadRefused(op, &UploadError{Status: ans.status, Message: msg})
	}
	if decodeErr != nil {
		return "", fmt.Errorf("%w: %s: undecodable answer: %w", ErrUnavailable, op, decodeErr)
	}
	if !ValidUUID(body.File) {
		return "", fmt.Errorf("%w: %s: answer has no file UUID under %q", ErrUnavailable, op, uploadFileField)
	}
	return body.File, nil
}

// uploadRefused classifies an Upload API error: a 4xx is the request's
// fault and comes back as the *UploadError alone; Uploadcare's own failures,
// throttling (429) and anything stranger (a redirect) are ErrUnavailable,
// worth retrying later.
func (c *Client) uploadRefused(op string, ue *UploadError) error {
	if ue.Status >= 400 && ue.Status < 500 && ue.Status != http.StatusTooManyRequests {
		return ue
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, ue)
}

// Metadata limits of the Upload API (§2.1).
const (
	maxMetadataKeys     = 50
	maxMetadataKeyLen   = 64
	maxMetadataValueLen = 512
)

// checkMetadata applies Uploadcare's metadata rules and reports a breach
// with the error code Uploadcare itself would answer.
func checkMetadata(metadata map[string]string) *UploadError {
	refuse := func(code, format string, args ...any) *UploadError {
		return &UploadError{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
	}
	if len(metadata) > maxMetadataKeys {
		return refuse("FileMetadataKeysNumberTooBigError", "A file can not have more than %d metadata keys.", maxMetadataKeys)
	}
	for k, v := range metadata {
		switch {
		case k == "":
			return refuse("FileMetadataKeyEmptyError", "File's metadata key can not be empty.")
		case len(k) > maxMetadataKeyLen:
			return refuse("FileMetadataKeyLengthTooBigError", "Length of file metadata key `%s` can not be more than %d symbols.", k, maxMetadataKeyLen)
		case strings.IndexFunc(k, func(r rune) bool { return !metadataKeyRune(r) }) >= 0:
			return refuse("FileMetadataKeyForbiddenError", "File's metadata key `%s` contains symbols not allowed by the metadata key format.", k)
		case v == "":
			return refuse("FileMetadataValueEmptyError", "Value of the file metadata key `%s` can not be empty.", k)
		case len([]rune(v)) > maxMetadataValueLen:
			return refuse("FileMetadataValueLengthTooBigError", "Value of file metadata key `%s` can not be more than %d symbols.", k, maxMetadataValueLen)
		}
	}
	return nil
}

// metadataKeyRune reports whether r may appear in a metadata key:
// [A-Za-z0-9_.:-].
func metadataKeyRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.:-", r)
}

// CDNBase returns the delivery base without a trailing slash: CDNURL, or
// https://<prefix>.ucarecd.net for the public key (§3).
func (c *Client) CDNBase() string {
	return baseURL(c.CDNURL, "https://"+signer.UploadcareCNAMEPrefix(c.PublicKey)+".ucarecd.net")
}

// CDNURLFor returns the file's CDN URL, {CDNBase}/{uuid}/, the form
// upload-client reports as cdnUrl. No filename is appended: it is optional
// for the CDN, and the UUID alone is what identifies the file, so a URL a
// client reports can be compared with this one exactly.
func (c *Client) CDNURLFor(uuid string) string {
	return c.CDNBase() + "/" + uuid + "/"
}

// ValidUUID reports whether s is a UUID in its canonical 8-4-4-4-12 hex
// form, the only form Uploadcare gives file IDs in.
func ValidUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// checkKeys refuses calls that cannot succeed before anything goes on the wire.
func (c *Client) checkKeys(op string) error {
	if c.PublicKey == "" || c.SecretKey == "" {
		return fmt.Errorf("%w: %s: client has no public or secret key", ErrUnavailable, op)
	}
	return nil
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) httpClient(fallback *http.Client) *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return fallback
}

func baseURL(configured, fallback string) string {
	if configured == "" {
		return fallback
	}
	return strings.TrimRight(configured, "/")
}

// answer is Uploadcare's reply, read whole.
type answer struct {
	status int
	body   []byte
}

// send performs req and reads the whole (bounded) answer. Transport errors,
// including the context's deadline, wrap both ErrUnavailable and the cause.
func (c *Client) send(hc *http.Client, req *http.Request, op string) (answer, error) {
	resp, err := hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			// The transport may report how the cut-off body write failed
			// instead of why: keep the caller's reason visible.
			err = fmt.Errorf("%w: %w", ctxErr, err)
		}
		return answer{}, fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return answer{}, fmt.Errorf("%w: %s: reading the answer: %w", ErrUnavailable, op, err)
	}
	if len(body) > maxAnswerBytes {
		return answer{}, fmt.Errorf("%w: %s: answer larger than %d bytes", ErrUnavailable, op, maxAnswerBytes)
	}
	return answer{status: resp.StatusCode, body: body}, nil
}

// quote formats a provider message for an error as ": <quoted message>", or
// "" when there is none.
func (c *Client) quote(msg string) string {
	msg = c.redact(msg)
	if msg == "" {
		return ""
	}
	return fmt.Sprintf(": %q", msg)
}

// redact prepares a provider message for logs: trimmed, cut short, and with
// any trace of the secret key removed. Uploadcare does not echo it, but a
// proxy or emulator in between might.
func (c *Client) redact(msg string) string {
	msg = strings.TrimSpace(msg)
	if c.SecretKey != "" {
		msg = strings.ReplaceAll(msg, c.SecretKey, "[redacted]")
	}
	const maxRunes = 300
	if r := []rune(msg); len(r) > maxRunes {
		msg = string(r[:maxRunes]) + "…"
	}
	return msg
}
