// Command ceiling is the upper bound the broker's /generate-signature is
// measured against: a bare net/http server that answers every request with
// the same signature-sized JSON body. No routing framework, no
// authentication, no hashing, no encoding: what is left is the cost of Go's
// HTTP server itself on this machine, which the broker cannot beat.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// defaultBody has the shape and size of the broker's Cloudinary answer; the
// benchmark suite passes the broker's real answer with -body instead.
const defaultBody = `{"success":true,"provider":"cloudinary","signature":"3d0c6a1f0e5b7f1c2a9d8e7f6a5b4c3d2e1f0a9b",` +
	`"timestamp":1713997800,"api_key":"123456789012345","cloud_name":"democloud","resource_type":"auto",` +
	`"upload_url":"https://api.cloudinary.com/v1_1/democloud/auto/upload","params":{"overwrite":"false",` +
	`"public_id":"uploads/bench-user-0/k3j5h7g9f1d3s5a7p9o1","timestamp":"1713997800"},"expires_at":"2024-04-24T23:30:00Z"}` + "\n"

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	bodyFile := flag.String("body", "", "file whose bytes are the answer (default: a signature-sized JSON)")
	flag.Parse()
	if err := run(*addr, *bodyFile); err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
}

func run(addr, bodyFile string) error {
	body := []byte(defaultBody)
	if bodyFile != "" {
		b, err := os.ReadFile(bodyFile)
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		body = b
	}
	length := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// Setting the header map entries directly skips the canonicalisation
		// Set would do: the ceiling is meant to be as cheap as net/http gets.
		hdr := w.Header()
		hdr["Content-Type"] = []string{"application/json"}
		hdr["Content-Length"] = []string{length}
		_, _ = w.Write(body)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// The same server settings as the broker's, so the only difference
	// measured is what runs inside the handler.
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	fmt.Printf("ceiling listening on %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
