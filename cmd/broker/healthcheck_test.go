package main

import (
	"errors"
	"testing"

	"github.com/brokerdev/broker/config"
)

func TestHealthURL(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"", "http://127.0.0.1:3000/healthz"},
		{":3000", "http://127.0.0.1:3000/healthz"},
		{"0.0.0.0:8080", "http://127.0.0.1:8080/healthz"},
		{"[::]:8080", "http://127.0.0.1:8080/healthz"},
		{"127.0.0.1:3001", "http://127.0.0.1:3001/healthz"},
		{"[::1]:3001", "http://[::1]:3001/healthz"},
		{"localhost:3002", "http://localhost:3002/healthz"},
	} {
		got, err := healthURL(tc.addr, "/healthz")
		if err != nil || got != tc.want {
			t.Errorf("healthURL(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
	for _, addr := range []string{"3000", "127.0.0.1:0", "a:b:c"} {
		_, err := healthURL(addr, "/healthz")
		var cfgErr *config.Error
		if !errors.As(err, &cfgErr) || cfgErr.Var != "ADDR" {
			t.Errorf("healthURL(%q): want an ADDR config error, got %v", addr, err)
		}
	}
}
