// Command broker is the signed-upload broker: it signs browser uploads to
// Cloudinary and Uploadcare, proves them with the provider, and records them
// per user in PostgreSQL (or SQLite in dev mode).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/brokerdev/broker/config"
)

const usage = `broker: signed uploads to Cloudinary and Uploadcare, recorded per user in Postgres.

Usage: broker [command] [flags]

Commands:
  dev        run everything offline: SQLite, the provider emulator, the demo page
  serve      run the production server (the default)
  migrate    apply database migrations and exit
  emulate    run only the provider emulator
  token      print a JWT for a user: broker token --sub USER [--ttl 1h]
  version    print the version
  healthcheck  exit 0 if the broker on ADDR answers /healthz (the container's HEALTHCHECK)

Configuration comes from the environment and a .env file; see README.md.
`

// exitConfig is the status for a missing or malformed setting.
const exitConfig = 2

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(stdout)
	case "dev":
		err = dev(stdout)
	case "migrate":
		err = migrate(stdout)
	case "emulate":
		err = emulate(stdout)
	case "token":
		err = token(args, stdout)
	case "healthcheck":
		err = healthcheck(args, stdout)
	case "version":
		fmt.Fprintln(stdout, "broker", version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "broker: unknown command %q\n\n%s", cmd, usage)
		return exitConfig
	}
	if err == nil {
		return 0
	}
	var cfgErr *config.Error
	var usageErr *usageError
	switch {
	case errors.As(err, &cfgErr):
		fmt.Fprintf(stderr, "broker: %s\n", cfgErr)
		return exitConfig
	case errors.As(err, &usageErr):
		fmt.Fprintf(stderr, "broker %s: %s\n", cmd, usageErr.msg)
		return exitConfig
	default:
		fmt.Fprintf(stderr, "broker %s: %v\n", cmd, err)
		return 1
	}
}

// usageError is a bad command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
