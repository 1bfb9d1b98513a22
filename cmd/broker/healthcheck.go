package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/brokerdev/broker/config"
)

// healthcheck asks the broker running beside it whether it answers: GET
// /healthz (or --path) on the port ADDR names, exit 0 on a 2xx, 1 otherwise.
// It exists for the container's HEALTHCHECK: the distroless image has no
// shell, curl or wget, only this binary, and the same ADDR (environment or
// .env) that `broker serve` listens on.
func healthcheck(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("path", "/healthz", "path to ask; /readyz also checks the database")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return &usageError{msg: err.Error() + " (usage: broker healthcheck [--path /healthz] [--timeout 3s])"}
	}
	if !strings.HasPrefix(*path, "/") {
		return &usageError{msg: "--path must start with /"}
	}
	if *timeout <= 0 {
		return &usageError{msg: "--timeout must be positive"}
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	url, err := healthURL(cfg.Addr, *path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	// No proxy: the broker is on this host, whatever HTTP_PROXY says.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("unhealthy: GET %s answered %s", url, resp.Status)
	}
	fmt.Fprintf(stdout, "healthy: GET %s answered %s\n", url, resp.Status)
	return nil
}

// healthURL turns the listen address into one to dial: a listener on every
// interface (":3000", "0.0.0.0:3000", "[::]:3000") is reached on loopback.
// An empty ADDR is serve's default, ":3000".
func healthURL(addr, path string) (string, error) {
	if addr == "" {
		addr = ":3000"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", &config.Error{Var: "ADDR", Problem: fmt.Sprintf("cannot read %q as host:port: %v", addr, err)}
	}
	if port == "0" {
		return "", &config.Error{Var: "ADDR", Problem: "port 0 picks a random port: the health check cannot know it"}
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}
