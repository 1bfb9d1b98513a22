package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"time"
)

// HTTPTarget is an HTTP/1.1 server driven over keep-alive connections, one
// per worker.
type HTTPTarget struct {
	// Addr is host:port.
	Addr string
	// Request appends request number seq of worker id, rendered as bytes on
	// the wire (see Render), to dst and returns it.
	Request func(dst []byte, id int, seq uint64) []byte
	// Expect is the status of a successful answer (default 200).
	Expect int
	// Check, when set, is given the body of each worker's first answer; an
	// error stops the run before anything is measured on a wrong answer.
	Check func(body []byte) error
}

// NewWorker implements NewWorker for Run.
func (t *HTTPTarget) NewWorker(id int) (Worker, error) {
	w := &httpWorker{t: t, id: id, expect: t.Expect}
	if w.expect == 0 {
		w.expect = 200
	}
	if err := w.dial(); err != nil {
		return nil, err
	}
	return w, nil
}

type httpWorker struct {
	t       *HTTPTarget
	id      int
	expect  int
	seq     uint64
	conn    net.Conn
	br      *bufio.Reader
	req     []byte
	body    []byte
	checked bool
}

func (w *httpWorker) dial() error {
	conn, err := net.DialTimeout("tcp", w.t.Addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("dial %s: %w", w.t.Addr, err)
	}
	w.conn = conn
	if w.br == nil {
		w.br = bufio.NewReaderSize(conn, 16<<10)
	} else {
		w.br.Reset(conn)
	}
	return nil
}

func (w *httpWorker) Close() error {
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}

// ioTimeout bounds one request so a stuck server fails the request instead
// of hanging the run.
const ioTimeout = 30 * time.Second

func (w *httpWorker) Do(ctx context.Context) error {
	if w.conn == nil {
		if err := w.dial(); err != nil {
			return err
		}
	}
	w.req = w.t.Request(w.req[:0], w.id, w.seq)
	w.seq++
	_ = w.conn.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := w.conn.Write(w.req); err != nil {
		_ = w.Close()
		return fmt.Errorf("write request: %w", err)
	}
	var status int
	var keepAlive bool
	var err error
	status, keepAlive, w.body, err = readResponse(w.br, w.body[:0])
	if err != nil {
		_ = w.Close()
		return fmt.Errorf("read answer: %w", err)
	}
	if !keepAlive {
		_ = w.Close()
	}
	if status != w.expect {
		return fmt.Errorf("status %d, want %d: %s", status, w.expect, snippet(w.body))
	}
	if !w.checked && w.t.Check != nil {
		w.checked = true
		if err := w.t.Check(w.body); err != nil {
			return fmt.Errorf("unexpected answer: %w: %s", err, snippet(w.body))
		}
	}
	return nil
}

func snippet(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// Render appends an HTTP/1.1 request to dst. headers are name, value pairs.
// A body gets its Content-Length; Host comes from host.
func Render(dst []byte, method, host, path string, headers []string, body []byte) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\n"...)
	for i := 0; i+1 < len(headers); i += 2 {
		dst = append(dst, headers[i]...)
		dst = append(dst, ": "...)
		dst = append(dst, headers[i+1]...)
		dst = append(dst, "\r\n"...)
	}
	if body != nil || method == "POST" || method == "PUT" {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	return append(dst, body...)
}

// Static returns a Request func that sends the same bytes every time.
func Static(raw []byte) func(dst []byte, id int, seq uint64) []byte {
	return func(dst []byte, _ int, _ uint64) []byte { return append(dst, raw...) }
}

var errMalformed = errors.New("malformed HTTP answer")

// readResponse reads one answer and appends its body to body. It handles
// what the servers measured here send: Content-Length, chunked encoding and
// close-delimited bodies.
func readResponse(br *bufio.Reader, body []byte) (status int, keepAlive bool, _ []byte, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, body, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, body, errMalformed
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, body, errMalformed
	}
	keepAlive = line[7] == '1' // HTTP/1.1 keeps the connection unless told otherwise
	contentLength := int64(-1)
	chunked := false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, false, body, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, body, errMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			contentLength, err = strconv.ParseInt(string(value), 10, 64)
			if err != nil || contentLength < 0 {
				return 0, false, body, errMalformed
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keepAlive = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keepAlive = true
			}
		}
	}
	switch {
	case status == 204 || status == 304 || (status >= 100 && status < 200):
		return status, keepAlive, body, nil
	case chunked:
		body, err = readChunked(br, body)
		return status, keepAlive, body, err
	case contentLength >= 0:
		body, err = readN(br, body, contentLength)
		return status, keepAlive, body, err
	default:
		b, err := io.ReadAll(br)
		return status, false, append(body, b...), err
	}
}

// maxBody bounds what one answer may hold: these are small JSON bodies.
const maxBody = 4 << 20

func readN(br *bufio.Reader, body []byte, n int64) ([]byte, error) {
	if n > maxBody {
		return body, fmt.Errorf("answer body of %d bytes is too large", n)
	}
	start := len(body)
	body = slices.Grow(body, int(n))
	_, err := io.ReadFull(br, body[start:start+int(n)])
	return body[:start+int(n)], err
}

func readChunked(br *bufio.Reader, body []byte) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return body, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 {
			return body, errMalformed
		}
		if size == 0 {
			// Trailers end with an empty line.
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return body, err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return body, nil
				}
			}
		}
		if int64(len(body))+size > maxBody {
			return body, errors.New("chunked answer body is too large")
		}
		if body, err = readN(br, body, size); err != nil {
			return body, err
		}
		if _, err := br.Discard(2); err != nil { // CRLF after the chunk
			return body, err
		}
	}
}
