//go:build !unix

package testdb

import "errors"

// startLocalCluster is Unix-only: it needs file locks and, under root,
// switching users. Elsewhere, point TEST_DATABASE_URL at a server.
func startLocalCluster() (string, error) {
	return "", errors.New("starting a private cluster is supported on Unix only")
}
