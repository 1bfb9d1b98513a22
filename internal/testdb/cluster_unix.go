//go:build unix

package testdb

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clusterDir holds the throwaway cluster shared by every test binary on the
// machine: its data directory, log, and the lock that serialises starting it.
func clusterDir() string { return filepath.Join(os.TempDir(), "broker-testpg") }

// startLocalCluster makes sure the machine's throwaway cluster runs and
// returns its administrative URL. go test runs packages as separate
// processes at once, so everything happens under an exclusive file lock:
// the first process initialises and starts the cluster, the rest find it
// running.
func startLocalCluster() (string, error) {
	initdb, pgctl, err := findServerBinaries()
	if err != nil {
		return "", err
	}
	base := clusterDir()
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(base, "lock"))
	if err != nil {
		return "", err
	}
	defer unlock()

	owner, err := clusterOwner()
	if err != nil {
		return "", err
	}
	data := filepath.Join(base, "data")

	if port, ok := runningPort(pgctl, data, owner); ok {
		if u := clusterURL(port); waitForServer(u, 30*time.Second) == nil {
			return u, nil
		}
	}

	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		// A directory without PG_VERSION is a half-finished initdb;
		// initdb refuses a non-empty directory, so start over.
		if err := os.RemoveAll(data); err != nil {
			return "", err
		}
		if err := owner.mkdir(data, 0o700); err != nil {
			return "", err
		}
		if out, err := owner.run(base, initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
			return "", fmt.Errorf("initdb: %w\n%s", err, out)
		}
	}

	port, err := freePort()
	if err != nil {
		return "", err
	}
	logFile := filepath.Join(base, "server.log")
	if err := owner.touch(logFile); err != nil {
		return "", err
	}
	// Speed over durability: the cluster holds nothing worth keeping.
	// No Unix socket, so nothing depends on a socket directory's rights.
	options := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "+
		"-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300", port)
	if out, err := owner.run(base, pgctl, "start", "-D", data, "-l", logFile, "-w", "-t", "60", "-o", options); err != nil {
		return "", fmt.Errorf("pg_ctl start (log in %s): %w\n%s", logFile, err, out)
	}
	u := clusterURL(port)
	if err := waitForServer(u, 30*time.Second); err != nil {
		return "", fmt.Errorf("the local cluster started but does not answer (log in %s): %w", logFile, err)
	}
	return u, nil
}

func clusterURL(port int) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

func waitForServer(u string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		err := ping(u)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runningPort reports the port of a cluster already running on data, read
// from its postmaster.pid (line 4) once pg_ctl confirms the pid is alive.
func runningPort(pgctl, data string, owner osUser) (int, bool) {
	if _, err := owner.run(filepath.Dir(data), pgctl, "status", "-D", data); err != nil {
		return 0, false
	}
	f, err := os.Open(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for line := 1; s.Scan(); line++ {
		if line == 4 {
			port, err := strconv.Atoi(strings.TrimSpace(s.Text()))
			return port, err == nil
		}
	}
	return 0, false
}

// findServerBinaries looks in PATH first, then where distributions install
// the server without putting it in PATH (Debian's /usr/lib/postgresql/N/bin,
// RHEL's /usr/pgsql-N/bin), newest version first.
func findServerBinaries() (initdb, pgctl string, err error) {
	dirs := []string{}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql*/bin", "/usr/local/opt/postgresql*/bin"} {
		found, _ := filepath.Glob(pattern)
		sort.Slice(found, func(i, j int) bool { return versionOf(found[i]) > versionOf(found[j]) })
		dirs = append(dirs, found...)
	}
	for _, dir := range dirs {
		i, p := filepath.Join(dir, "initdb"), filepath.Join(dir, "pg_ctl")
		if isExecutable(i) && isExecutable(p) {
			return i, p, nil
		}
	}
	return "", "", errors.New("initdb and pg_ctl not found in PATH or the usual install directories")
}

// versionOf extracts the major version from a path such as
// /usr/lib/postgresql/17/bin, so 17 sorts above 9.6.
func versionOf(dir string) float64 {
	for _, part := range strings.Split(dir, "/") {
		digits := strings.TrimLeft(part, "abcdefghijklmnopqrstuvwxyz@-_")
		if v, err := strconv.ParseFloat(digits, 64); err == nil {
			return v
		}
	}
	return 0
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir() && info.Mode()&0o111 != 0
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// osUser is who runs the server. initdb and pg_ctl refuse to run as root,
// which is common in containers and CI, so root hands the cluster to the
// postgres user (or nobody).
type osUser struct {
	cred *syscall.Credential // nil: the current user
}

func clusterOwner() (osUser, error) {
	if os.Geteuid() != 0 {
		return osUser{}, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return osUser{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, nil
	}
	return osUser{}, errors.New("running as root, and neither a postgres nor a nobody user exists to own the cluster")
}

func (o osUser) run(dir, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if o.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.cred}
	}
	return cmd.CombinedOutput()
}

func (o osUser) mkdir(path string, perm os.FileMode) error {
	if err := os.MkdirAll(path, perm); err != nil {
		return err
	}
	return o.chown(path)
}

func (o osUser) touch(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	return o.chown(path)
}

func (o osUser) chown(path string) error {
	if o.cred == nil {
		return nil
	}
	return os.Chown(path, int(o.cred.Uid), int(o.cred.Gid))
}
