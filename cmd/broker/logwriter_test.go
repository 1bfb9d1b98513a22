package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer lets the test read what the flusher goroutine wrote.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogBufferWritesOnTickAndOnClose(t *testing.T) {
	var out syncBuffer
	b := newLogBuffer(&out, 10*time.Millisecond)
	b.Write([]byte("first\n"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "first\n") {
		if time.Now().After(deadline) {
			t.Fatal("a buffered line was never written out by the ticker")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A long interval: only Close can write the second line.
	var out2 syncBuffer
	b2 := newLogBuffer(&out2, time.Hour)
	b2.Write([]byte("second\n"))
	if out2.String() != "" {
		t.Fatalf("written before a flush: %q", out2.String())
	}
	b2.Close()
	if out2.String() != "second\n" {
		t.Fatalf("after Close: %q, want the buffered line", out2.String())
	}
	b.Close()
}
