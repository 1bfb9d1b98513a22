//go:build unix

package testdb

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Cluster is a PostgreSQL server of one test's own, for tests that stop and
// start the database (fault injection): the shared server others use must
// never go down. It needs the server binaries (initdb, pg_ctl).
type Cluster struct {
	pgctl string
	dir   string // holds data/ and server.log
	port  int
	owner osUser
	opts  string
}

// NewCluster initialises a cluster in a temporary directory and starts it
// on a free port. It is stopped and removed when t ends.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	initdb, pgctl, err := findServerBinaries()
	if err != nil {
		t.Fatalf("testdb: private cluster: %v\n%s", err, howToGetPostgres)
	}
	owner, err := clusterOwner()
	if err != nil {
		t.Fatalf("testdb: private cluster: %v", err)
	}
	// Not t.TempDir: its parents are private to the test's user, and as
	// root the server runs as another one.
	dir, err := os.MkdirTemp("", "broker-pgprivate-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{pgctl: pgctl, dir: dir, owner: owner}
	t.Cleanup(func() {
		_, _ = c.owner.run(c.dir, c.pgctl, "stop", "-D", c.data(), "-m", "immediate", "-w")
		_ = os.RemoveAll(dir)
	})
	if err := owner.mkdir(c.data(), 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := owner.run(dir, initdb, "-D", c.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("testdb: initdb: %v\n%s", err, out)
	}
	if err := owner.touch(c.logFile()); err != nil {
		t.Fatal(err)
	}
	if c.port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	// fsync off is safe here (nothing survives the machine anyway), but
	// synchronous_commit stays on: a commit the broker was told about must
	// survive an immediate (crash) stop, which is what the tests check.
	c.opts = fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c full_page_writes=off -c max_connections=200", c.port)
	c.Start(t)
	return c
}

func (c *Cluster) data() string    { return filepath.Join(c.dir, "data") }
func (c *Cluster) logFile() string { return filepath.Join(c.dir, "server.log") }

// AdminURL is the URL of the postgres database as the superuser.
func (c *Cluster) AdminURL() string { return clusterURL(c.port) }

// CreateDatabase makes an empty database and returns its URL.
func (c *Cluster) CreateDatabase(t testing.TB, name string) string {
	t.Helper()
	if err := adminExec(c.AdminURL(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testdb: create database %s: %v", name, err)
	}
	u, err := withDatabase(c.AdminURL(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Stop stops the server. mode is pg_ctl's: "fast" ends sessions with an
// administrator-shutdown error, "immediate" kills the server as a crash
// would (recovery runs at the next start).
func (c *Cluster) Stop(t testing.TB, mode string) {
	t.Helper()
	if out, err := c.owner.run(c.dir, c.pgctl, "stop", "-D", c.data(), "-m", mode, "-w", "-t", "60"); err != nil {
		t.Fatalf("testdb: pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
}

// Start starts the server again on the same port and waits until it
// answers.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if out, err := c.owner.run(c.dir, c.pgctl, "start", "-D", c.data(), "-l", c.logFile(), "-w", "-t", "60", "-o", c.opts); err != nil {
		log, _ := os.ReadFile(c.logFile())
		t.Fatalf("testdb: pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	if err := waitForServer(c.AdminURL(), 30*time.Second); err != nil {
		t.Fatalf("testdb: the private cluster does not answer: %v", err)
	}
}
