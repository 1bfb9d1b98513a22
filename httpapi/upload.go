package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/metadata"
)

// multipartOverhead is what a form adds around the file: boundaries, part
// headers and a short fileName field.
const multipartOverhead = 64 << 10

// errTooLarge is the size limit tripping while a file streams through.
var errTooLarge = errors.New("file is larger than the upload limit")

// limitedReader fails once more than max bytes went through, so a file that
// is too large is cut off while it streams instead of after it was buffered.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

type uploadResponse struct {
	Success bool          `json:"success"`
	FileURL string        `json:"fileUrl"`
	File    metadata.File `json:"file"`
}

// upload is the Uploadcare guide's server-side upload: multipart/form-data
// with `file` and an optional `fileName` before it. The file is streamed to
// Uploadcare part by part as it arrives, never held whole in memory.
func (s *server) upload(c echo.Context) error {
	if s.Service.Uploadcare == nil {
		return apierror.InvalidRequest("Uploadcare is not configured on this broker")
	}
	req := c.Request()
	if req.ContentLength > s.UploadMaxBytes+multipartOverhead {
		return tooLarge(s.UploadMaxBytes)
	}
	mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || mt != "multipart/form-data" {
		return apierror.InvalidRequest("Content-Type must be multipart/form-data with a file part named file")
	}
	mr, err := req.MultipartReader()
	if err != nil {
		return apierror.Wrap(apierror.CodeInvalidRequest, err, "malformed multipart body")
	}
	fileName := ""
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return apierror.InvalidRequest("the form has no file part named file")
		}
		if err != nil {
			return apierror.Wrap(apierror.CodeInvalidRequest, err, "malformed multipart body")
		}
		switch part.FormName() {
		case "fileName":
			v, err := io.ReadAll(io.LimitReader(part, 1024))
			if err != nil {
				return apierror.Wrap(apierror.CodeInvalidRequest, err, "could not read fileName")
			}
			fileName = strings.TrimSpace(string(v))
		case "file":
			return s.streamToUploadcare(c, &soleFile{part: part, form: mr}, part, fileName)
		}
		part.Close()
	}
}

// errSecondFile is a form with more than one file part: which one the
// caller meant is unclear, and recording the first would drop the rest
// silently.
var errSecondFile = errors.New("the form has more than one part named file")

// soleFile reads the file part and, once it ends, the rest of the form. A
// second file part fails that last read, so the upload to Uploadcare is
// cut off before it completes and nothing is recorded.
type soleFile struct {
	part    io.Reader
	form    *multipart.Reader
	checked bool
}

func (f *soleFile) Read(p []byte) (int, error) {
	n, err := f.part.Read(p)
	if errors.Is(err, io.EOF) && !f.checked {
		f.checked = true
		if restErr := f.checkRest(); restErr != nil {
			return n, restErr
		}
	}
	return n, err
}

// checkRest reads the parts after the file, which carry nothing the
// broker uses; their size is bounded like the form's other overhead.
func (f *soleFile) checkRest() error {
	left := int64(multipartOverhead)
	for {
		part, err := f.form.NextPart()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		case part.FormName() == "file":
			return errSecondFile
		}
		n, err := io.Copy(io.Discard, io.LimitReader(part, left+1))
		if err != nil {
			return err
		}
		if left -= n; left < 0 {
			return errTooLarge
		}
	}
}

func (s *server) streamToUploadcare(c echo.Context, file io.Reader, part *multipart.Part, fileName string) error {
	name := fileName
	if name == "" {
		name = part.FileName()
	}
	name = filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	if name == "." || name == "/" || name == "" {
		name = "file"
	}
	contentType := part.Header.Get("Content-Type")
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	body := &limitedReader{r: file, left: s.UploadMaxBytes}
	f, created, err := s.Service.UploadToUploadcare(c.Request().Context(), auth.UserID(c), body, name, contentType)
	switch {
	case errors.Is(err, errTooLarge):
		return tooLarge(s.UploadMaxBytes)
	case errors.Is(err, errSecondFile):
		return apierror.Wrap(apierror.CodeInvalidRequest, err, "send one file per request: the form has more than one part named file")
	case err != nil && body.left >= 0 && isClientReadError(err):
		return apierror.Wrap(apierror.CodeInvalidRequest, err, "the upload was cut off before the file ended")
	case err != nil:
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, uploadResponse{Success: true, FileURL: f.URL, File: f})
}

// isClientReadError tells a broken client body (the multipart reader
// failing) from the provider failing.
func isClientReadError(err error) bool {
	var ae *apierror.Error
	if errors.As(err, &ae) {
		return false
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "multipart")
}

func tooLarge(limit int64) error {
	return apierror.New(apierror.CodePayloadTooLarge, "the file is larger than the limit of %s", humanBytes(limit))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}
