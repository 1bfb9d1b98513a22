package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// logBuffer gathers log lines and writes them out at most every interval
// (or when 32 KiB have piled up). One write system call per request line
// was the largest single cost of a signature in docs/benchmarks.md; the
// price is that a crash loses at most the last interval of lines. Close
// writes what is left.
type logBuffer struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newLogBuffer(out io.Writer, interval time.Duration) *logBuffer {
	b := &logBuffer{w: bufio.NewWriterSize(out, 32<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushEvery(interval)
	return b
}

// Write takes one log record; slog hands each record over in one call, so
// lines are never split between flushes.
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

func (b *logBuffer) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.w.Flush() // nowhere to report a failing log output
}

func (b *logBuffer) flushEvery(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.flush()
		case <-b.stop:
			b.flush()
			return
		}
	}
}

// Close stops the ticker and writes out what is buffered.
func (b *logBuffer) Close() {
	close(b.stop)
	<-b.done
}
