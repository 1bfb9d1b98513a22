package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/brokerdev/broker/internal/testdb"
)

// A missing or malformed setting stops the program with status 2 and one
// line naming the variable.
func TestBadConfigurationExitsWithStatus2(t *testing.T) {
	good := map[string]string{
		"DATABASE_URL":    "postgres://postgres@127.0.0.1:1/none",
		"CLOUDINARY_URL":  cloudinaryURL,
		"AUTH_JWT_SECRET": jwtSecret,
	}
	cases := []struct {
		name, variable string
		change         map[string]string
	}{
		{"malformed cloudinary url", "CLOUDINARY_URL", map[string]string{"CLOUDINARY_URL": "https://key:secret@cloud"}},
		{"missing database", "DATABASE_URL", map[string]string{"DATABASE_URL": ""}},
		{"unknown database scheme", "DATABASE_URL", map[string]string{"DATABASE_URL": "mysql://x"}},
		{"no provider", "CLOUDINARY_URL", map[string]string{"CLOUDINARY_URL": ""}},
		{"no auth", "AUTH_JWT_SECRET", map[string]string{"AUTH_JWT_SECRET": ""}},
		{"short jwt secret", "AUTH_JWT_SECRET", map[string]string{"AUTH_JWT_SECRET": "short"}},
		{"ttl over an hour", "SIGNATURE_TTL", map[string]string{"SIGNATURE_TTL": "2h"}},
		{"ttl not a duration", "SIGNATURE_TTL", map[string]string{"SIGNATURE_TTL": "soon"}},
		{"bad algorithm", "CLOUDINARY_SIGNATURE_ALGORITHM", map[string]string{"CLOUDINARY_SIGNATURE_ALGORITHM": "md5"}},
		{"bad max bytes", "UPLOAD_MAX_BYTES", map[string]string{"UPLOAD_MAX_BYTES": "-1"}},
		{"half the cloudinary variables", "CLOUDINARY_API_SECRET", map[string]string{"CLOUDINARY_URL": "", "CLOUDINARY_CLOUD_NAME": "c", "CLOUDINARY_API_KEY": "k"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range good {
				env[k] = v
			}
			for k, v := range tc.change {
				env[k] = v
			}
			_, stderr, code := runBroker(t, env, "serve")
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.variable) {
				t.Errorf("exit %d, stderr %q; want status 2 and one line naming %s", code, stderr, tc.variable)
			}
		})
	}
}

func TestVersionAndTokenCommands(t *testing.T) {
	out, _, code := runBroker(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "broker ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	if _, stderr, code := runBroker(t, map[string]string{"AUTH_JWT_SECRET": jwtSecret}, "token"); code != 2 || !strings.Contains(stderr, "--sub") {
		t.Errorf("token without --sub: exit %d, %q", code, stderr)
	}
	if tok := token(t, "carol"); strings.Count(tok, ".") != 2 {
		t.Errorf("token %q is not a JWT", tok)
	}
}

// The Neon guide's own table, with rows, survives `broker migrate`: every
// row lands in files and is visible through the view, and the old table is
// kept under a new name.
func TestMigrateImportsTheGuideTable(t *testing.T) {
	dbURL := testdb.PostgresURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		`CREATE TABLE IF NOT EXISTS cloudinary_files (
		    id SERIAL PRIMARY KEY,
		    public_id TEXT NOT NULL UNIQUE,
		    media_url TEXT NOT NULL,
		    resource_type TEXT NOT NULL,
		    user_id TEXT NOT NULL,
		    upload_timestamp TIMESTAMPTZ DEFAULT NOW())`,
		`INSERT INTO cloudinary_files (public_id, media_url, resource_type, user_id) VALUES
		    ('a', 'https://res.cloudinary.com/c/image/upload/v1/a.png', 'image', 'user_123'),
		    ('b', 'https://res.cloudinary.com/c/video/upload/v1/b.mp4', 'video', 'user_123'),
		    ('c', 'https://res.cloudinary.com/c/raw/upload/v1/c.txt', 'raw', 'user_456')`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ { // idempotent
		if out, stderr, code := runBroker(t, map[string]string{"DATABASE_URL": dbURL}, "migrate"); code != 0 {
			t.Fatalf("broker migrate: exit %d\n%s%s", code, out, stderr)
		}
	}
	var inFiles, inView, legacy int
	q := func(sql string, dst *int) {
		if err := conn.QueryRow(ctx, sql).Scan(dst); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	q(`SELECT count(*) FROM files WHERE provider = 'cloudinary' AND provider_id IN ('a','b','c')`, &inFiles)
	q(`SELECT count(*) FROM cloudinary_files WHERE public_id IN ('a','b','c') AND user_id IN ('user_123','user_456')`, &inView)
	q(`SELECT count(*) FROM cloudinary_files_legacy`, &legacy)
	if inFiles != 3 || inView != 3 || legacy != 3 {
		t.Errorf("files %d, view %d, legacy table %d; want 3 each", inFiles, inView, legacy)
	}
}
