package db_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/brokerdev/broker/db"
	"github.com/brokerdev/broker/db/storetest"
	"github.com/brokerdev/broker/internal/testdb"
	"github.com/brokerdev/broker/metadata"
)

// migratedStore returns a store on a fresh, migrated database.
func migratedStore(t *testing.T) (*db.Postgres, string) {
	t.Helper()
	ctx := context.Background()
	dbURL := testdb.PostgresURL(t)
	if err := db.MigratePostgres(ctx, dbURL); err != nil {
		t.Fatalf("MigratePostgres: %v", err)
	}
	p, err := db.OpenPostgres(ctx, dbURL)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(p.Close)
	return p, dbURL
}

func TestPostgresStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metadata.Store {
		p, _ := migratedStore(t)
		return p
	})
}

// connect opens a plain connection for the test to look at the database
// behind the store's back.
func connect(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func embeddedMigrations(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("migrations/postgres")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.PostgresURL(t)
	for i := range 3 {
		if err := db.MigratePostgres(ctx, dbURL); err != nil {
			t.Fatalf("MigratePostgres #%d: %v", i+1, err)
		}
	}
	conn := connect(t, dbURL)
	if got, want := count(t, conn, `SELECT count(*) FROM schema_migrations`), embeddedMigrations(t); got != want {
		t.Errorf("schema_migrations has %d rows, want %d", got, want)
	}
	var name string
	if err := conn.QueryRow(ctx, `SELECT name FROM schema_migrations WHERE version = 1`).Scan(&name); err != nil || name != "0001_files" {
		t.Errorf("migration 1 recorded as %q (%v), want 0001_files", name, err)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	dbURL := testdb.PostgresURL(t)
	// Replicas starting together: each opens its own pool and migrates.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.MigratePostgres(context.Background(), dbURL)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
	conn := connect(t, dbURL)
	if got, want := count(t, conn, `SELECT count(*) FROM schema_migrations`), embeddedMigrations(t); got != want {
		t.Errorf("schema_migrations has %d rows, want %d", got, want)
	}
}

// The tables exactly as the Neon guides create them.
const (
	guideCloudinaryTable = `CREATE TABLE IF NOT EXISTS cloudinary_files (
    id SERIAL PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,  -- Cloudinary's unique identifier for the asset
    media_url TEXT NOT NULL,         -- Media URL for the asset on Cloudinary's CDN
    resource_type TEXT NOT NULL,     -- Type of asset (for example, 'image', 'video', 'raw')
    user_id TEXT NOT NULL,           -- User associated with the file
    upload_timestamp TIMESTAMPTZ DEFAULT NOW()
)`
	guideUploadcareTable = `CREATE TABLE IF NOT EXISTS uploadcare_files (
    id SERIAL PRIMARY KEY,
    file_id TEXT NOT NULL UNIQUE,
    file_url TEXT NOT NULL,
    user_id TEXT NOT NULL,
    upload_timestamp TIMESTAMPTZ DEFAULT NOW()
)`
	// The guides' INSERT statements, as their servers send them.
	guideCloudinaryInsert = `INSERT INTO cloudinary_files (public_id, media_url, resource_type, user_id)
      VALUES ($1, $2, $3, $4)`
	guideUploadcareInsert = `INSERT INTO uploadcare_files (file_id, file_url, user_id) VALUES ($1, $2, $3)`
)

// legacyRow is a row of a guide's table and what it must become in files.
type legacyRow struct {
	provider, providerID, url, resourceType, userID string
	uploaded                                        *time.Time
}

func TestMigrateImportsGuideTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.PostgresURL(t)
	conn := connect(t, dbURL)
	exec(t, conn, guideCloudinaryTable)
	exec(t, conn, guideUploadcareTable)

	at := func(s string) *time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return &v
	}
	rows := []legacyRow{
		{"cloudinary", "samples/cat", "https://res.cloudinary.com/demo/image/upload/v1/samples/cat.jpg", "image", "user_123", at("2025-01-02T03:04:05.123456Z")},
		{"cloudinary", "samples/clip", "https://res.cloudinary.com/demo/video/upload/v1/samples/clip.mp4", "video", "user_123", at("2025-02-03T04:05:06Z")},
		{"cloudinary", "docs/report", "https://res.cloudinary.com/demo/raw/upload/v1/docs/report.pdf", "raw", "user_456", nil},
		{"uploadcare", "3c269810-c17b-4e2c-92b6-25622464d866", "https://ucarecdn.com/3c269810-c17b-4e2c-92b6-25622464d866/", "raw", "user_123", at("2025-03-04T05:06:07Z")},
		{"uploadcare", "8f2e1c4a-9a4b-4f0e-b0f1-1f0e5a6b7c8d", "https://ucarecdn.com/8f2e1c4a-9a4b-4f0e-b0f1-1f0e5a6b7c8d/", "raw", "user_789", nil},
	}
	for _, r := range rows {
		switch r.provider {
		case "cloudinary":
			exec(t, conn, `INSERT INTO cloudinary_files (public_id, media_url, resource_type, user_id, upload_timestamp) VALUES ($1, $2, $3, $4, $5)`,
				r.providerID, r.url, r.resourceType, r.userID, r.uploaded)
		case "uploadcare":
			exec(t, conn, `INSERT INTO uploadcare_files (file_id, file_url, user_id, upload_timestamp) VALUES ($1, $2, $3, $4)`,
				r.providerID, r.url, r.userID, r.uploaded)
		}
	}

	before := time.Now().Add(-time.Minute)
	if err := db.MigratePostgres(ctx, dbURL); err != nil {
		t.Fatalf("MigratePostgres: %v", err)
	}
	store, err := db.OpenPostgres(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	for _, r := range rows {
		f, err := store.GetByProviderID(ctx, r.userID, r.provider, r.providerID)
		if err != nil {
			t.Errorf("imported %s %s: %v", r.provider, r.providerID, err)
			continue
		}
		if f.URL != r.url || f.ResourceType != r.resourceType || f.UserID != r.userID {
			t.Errorf("imported %s %s as url=%s type=%s user=%s", r.provider, r.providerID, f.URL, f.ResourceType, f.UserID)
		}
		if r.uploaded != nil && !f.CreatedAt.Equal(*r.uploaded) {
			t.Errorf("imported %s: created_at %v, want upload_timestamp %v", r.providerID, f.CreatedAt, *r.uploaded)
		}
		if r.uploaded == nil && f.CreatedAt.Before(before) {
			t.Errorf("imported %s without upload_timestamp: created_at %v, want now", r.providerID, f.CreatedAt)
		}
		if f.Bytes != nil || f.Format != nil || f.Width != nil {
			t.Errorf("imported %s: details the guide's table did not have: %+v", r.providerID, f)
		}
	}
	if n := count(t, conn, `SELECT count(*) FROM files`); n != len(rows) {
		t.Errorf("files holds %d rows, want %d", n, len(rows))
	}

	// The old tables are kept, rows and all, under their new names.
	if n := count(t, conn, `SELECT count(*) FROM cloudinary_files_legacy`); n != 3 {
		t.Errorf("cloudinary_files_legacy holds %d rows, want 3", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM uploadcare_files_legacy`); n != 2 {
		t.Errorf("uploadcare_files_legacy holds %d rows, want 2", n)
	}

	// The guides' SELECTs read the same rows through the views.
	if n := count(t, conn, `SELECT count(*) FROM (SELECT id, public_id, media_url, resource_type, user_id, upload_timestamp
		FROM cloudinary_files WHERE user_id = 'user_123' AND resource_type = 'image') AS q`); n != 1 {
		t.Errorf("the Cloudinary guide's query finds %d rows, want 1", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM (SELECT id, file_id, file_url, user_id, upload_timestamp
		FROM uploadcare_files WHERE user_id = 'user_123') AS q`); n != 1 {
		t.Errorf("the Uploadcare guide's query finds %d rows, want 1", n)
	}
	for _, r := range rows {
		var n int
		switch r.provider {
		case "cloudinary":
			n = count(t, conn, `SELECT count(*) FROM cloudinary_files WHERE public_id = $1 AND media_url = $2 AND resource_type = $3 AND user_id = $4`,
				r.providerID, r.url, r.resourceType, r.userID)
		case "uploadcare":
			n = count(t, conn, `SELECT count(*) FROM uploadcare_files WHERE file_id = $1 AND file_url = $2 AND user_id = $3`,
				r.providerID, r.url, r.userID)
		}
		if n != 1 {
			t.Errorf("%s %s appears %d times in its view, want 1", r.provider, r.providerID, n)
		}
	}

	// Migrating again neither imports again nor fails.
	if err := db.MigratePostgres(ctx, dbURL); err != nil {
		t.Fatalf("MigratePostgres again: %v", err)
	}
	if n := count(t, conn, `SELECT count(*) FROM files`); n != len(rows) {
		t.Errorf("after a second migrate files holds %d rows, want %d", n, len(rows))
	}

	guideInsertsLandInFiles(t, store, conn)
}

// A reader who customised the guide's table, and who already has a table
// named like the first choice of new name, loses nothing either.
func TestMigrateImportsCustomisedTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.PostgresURL(t)
	conn := connect(t, dbURL)
	exec(t, conn, guideCloudinaryTable)
	exec(t, conn, `ALTER TABLE cloudinary_files ADD COLUMN format text, ADD COLUMN width int, ADD COLUMN height int, ADD COLUMN tags text[], ADD COLUMN bytes int`)
	exec(t, conn, `CREATE TABLE cloudinary_files_legacy (note text)`)
	exec(t, conn, `INSERT INTO cloudinary_files_legacy VALUES ('someone else''s table')`)
	exec(t, conn, `INSERT INTO cloudinary_files (public_id, media_url, resource_type, user_id, format, width, height, tags, bytes)
		VALUES ('a/b', 'https://res.cloudinary.com/demo/image/upload/v1/a/b.png', 'image', 'u1', 'png', 640, 480, '{x,y}', 2048)`)

	if err := db.MigratePostgres(ctx, dbURL); err != nil {
		t.Fatalf("MigratePostgres: %v", err)
	}
	store, err := db.OpenPostgres(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	f, err := store.GetByProviderID(ctx, "u1", "cloudinary", "a/b")
	if err != nil {
		t.Fatalf("imported row: %v", err)
	}
	if f.Format == nil || *f.Format != "png" || f.Width == nil || *f.Width != 640 || f.Height == nil || *f.Height != 480 || f.Bytes == nil || *f.Bytes != 2048 {
		t.Errorf("extra columns not carried over: format=%v width=%v height=%v bytes=%v", f.Format, f.Width, f.Height, f.Bytes)
	}
	if n := count(t, conn, `SELECT count(*) FROM cloudinary_files_legacy WHERE note IS NOT NULL`); n != 1 {
		t.Errorf("the unrelated cloudinary_files_legacy table was touched")
	}
	if n := count(t, conn, `SELECT count(*) FROM cloudinary_files_legacy_2 WHERE tags = '{x,y}'`); n != 1 {
		t.Errorf("cloudinary_files_legacy_2 does not hold the old row")
	}
}

func TestGuideInsertsOnFreshDatabase(t *testing.T) {
	t.Parallel()
	store, dbURL := migratedStore(t)
	guideInsertsLandInFiles(t, store, connect(t, dbURL))
}

// guideInsertsLandInFiles runs the guides' own INSERT statements against
// the views and finds the records through the store.
func guideInsertsLandInFiles(t *testing.T, store *db.Postgres, conn *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	before := time.Now().Add(-time.Minute)
	publicID := "uploads/guide/" + uuid.NewString()
	mediaURL := "https://res.cloudinary.com/demo/image/upload/v1/" + publicID + ".jpg"
	exec(t, conn, guideCloudinaryInsert, publicID, mediaURL, "image", "guide-user")
	fileID := uuid.NewString()
	fileURL := "https://ucarecdn.com/" + fileID + "/"
	exec(t, conn, guideUploadcareInsert, fileID, fileURL, "guide-user")

	c, err := store.GetByProviderID(ctx, "guide-user", metadata.ProviderCloudinary, publicID)
	if err != nil {
		t.Fatalf("the Cloudinary guide's insert: %v", err)
	}
	if c.URL != mediaURL || c.ResourceType != "image" || c.CreatedAt.Before(before) {
		t.Errorf("the Cloudinary guide's insert stored %+v", c)
	}
	u, err := store.GetByProviderID(ctx, "guide-user", metadata.ProviderUploadcare, fileID)
	if err != nil {
		t.Fatalf("the Uploadcare guide's insert: %v", err)
	}
	if u.URL != fileURL || u.ResourceType != "raw" || u.CreatedAt.Before(before) {
		t.Errorf("the Uploadcare guide's insert stored %+v", u)
	}

	// INSERT … RETURNING answers with the stored row, as a table would.
	var id uuid.UUID
	var uploaded time.Time
	err = conn.QueryRow(ctx, guideUploadcareInsert+` RETURNING id, upload_timestamp`, uuid.NewString(), "https://ucarecdn.com/x/", "guide-user").Scan(&id, &uploaded)
	if err != nil || id == uuid.Nil || uploaded.IsZero() {
		t.Errorf("INSERT … RETURNING on the view: id=%v upload_timestamp=%v err=%v", id, uploaded, err)
	}

	// A duplicate fails as it did on the guide's UNIQUE column.
	_, err = conn.Exec(ctx, guideCloudinaryInsert, publicID, mediaURL, "image", "guide-user")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Errorf("duplicate insert through the view: err = %v, want unique_violation", err)
	}

	// Deleting through a view deletes the record.
	exec(t, conn, `DELETE FROM uploadcare_files WHERE file_id = $1`, fileID)
	if _, err := store.GetByProviderID(ctx, "guide-user", metadata.ProviderUploadcare, fileID); !errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("after DELETE through the view: %v, want ErrNotFound", err)
	}
}

// Neon's default role owns its database without being a superuser; the
// migrations must need no more than that.
func TestMigrateAsDatabaseOwner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.PostgresURL(t)
	admin := connect(t, dbURL)
	role := "broker_owner_" + uuid.NewString()[:8]
	ident := pgx.Identifier{role}.Sanitize()
	exec(t, admin, `CREATE ROLE `+ident+` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`)
	t.Cleanup(func() {
		// Runs before the database is dropped; takes back what the role
		// owns (the database included) so the role can go.
		for _, sql := range []string{`REASSIGN OWNED BY ` + ident + ` TO CURRENT_USER`, `DROP OWNED BY ` + ident, `DROP ROLE ` + ident} {
			if _, err := admin.Exec(context.Background(), sql); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
	var dbName string
	if err := admin.QueryRow(ctx, `SELECT current_database()`).Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	exec(t, admin, `ALTER DATABASE `+pgx.Identifier{dbName}.Sanitize()+` OWNER TO `+ident)
	// Before PostgreSQL 15 the public schema belonged to the bootstrap
	// superuser; Neon hands it to the database owner.
	exec(t, admin, `ALTER SCHEMA public OWNER TO `+ident)
	// The guide's table was created by the app, i.e. by the owner.
	exec(t, admin, guideUploadcareTable)
	exec(t, admin, `ALTER TABLE uploadcare_files OWNER TO `+ident)

	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	if err := db.MigratePostgres(ctx, u.String()); err != nil {
		t.Fatalf("MigratePostgres as the database owner: %v", err)
	}
}

// closedPort returns a local port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestUnreachableDatabaseIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := "postgres://postgres@127.0.0.1:" + strconv.Itoa(closedPort(t)) + "/postgres?sslmode=disable&connect_timeout=2"
	store, err := db.OpenPostgres(ctx, dbURL)
	if err != nil {
		t.Fatalf("OpenPostgres does not connect, so it must not fail: %v", err)
	}
	defer store.Close()

	f := metadata.File{Provider: "cloudinary", ProviderID: "x", URL: "https://x", ResourceType: "image", UserID: "u"}
	_, _, saveErr := store.SaveFile(ctx, f)
	_, getErr := store.GetFile(ctx, "u", uuid.NewString())
	_, byErr := store.GetByProviderID(ctx, "u", "cloudinary", "x")
	_, listErr := store.ListFiles(ctx, "u", metadata.ListQuery{Limit: 10})
	for what, err := range map[string]error{
		"Ping":            store.Ping(ctx),
		"SaveFile":        saveErr,
		"GetFile":         getErr,
		"GetByProviderID": byErr,
		"ListFiles":       listErr,
		"DeleteFile":      store.DeleteFile(ctx, "u", uuid.NewString()),
		"MigratePostgres": db.MigratePostgres(ctx, dbURL),
	} {
		if !errors.Is(err, metadata.ErrUnavailable) {
			t.Errorf("%s: err = %v, want ErrUnavailable", what, err)
		}
	}
}

// A connection the server ends (a Neon compute suspended or restarted, an
// administrator's pg_terminate_backend) fails the statement on it as
// unavailable, and the pool recovers with a new connection.
func TestTerminatedConnectionIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, dbURL := migratedStore(t)
	store, err := db.OpenPostgres(ctx, dbURL+"&pool_max_conns=1")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := store.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pid := c.Conn().PgConn().PID()
	c.Release()

	admin := connect(t, dbURL)
	exec(t, admin, `SELECT pg_terminate_backend($1)`, pid)

	_, err = store.GetFile(ctx, "u", uuid.NewString())
	if !errors.Is(err, metadata.ErrUnavailable) {
		t.Errorf("GetFile on a terminated connection: err = %v, want ErrUnavailable", err)
	}
	_, err = store.GetFile(ctx, "u", uuid.NewString())
	if !errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("GetFile once the pool has reconnected: err = %v, want ErrNotFound", err)
	}
}

func TestOpenPostgresRejectsBadURL(t *testing.T) {
	_, err := db.OpenPostgres(context.Background(), "postgres://u:s3cret@host:notaport/db")
	if err == nil {
		t.Fatal("OpenPostgres accepted a bad URL")
	}
	if got := err.Error(); strings.Contains(got, "s3cret") {
		t.Errorf("the error shows the password: %s", got)
	}
}

func TestOpenAndMigrateByDatabaseURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.PostgresURL(t)
	if err := db.Migrate(ctx, dbURL); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	store, err := db.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer store.Close()
	if _, ok := store.(*db.Postgres); !ok {
		t.Errorf("Open(postgres://…) = %T, want *db.Postgres", store)
	}
	if err := store.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if store, err := db.Open(ctx, "mysql://x"); err == nil || store != nil {
		t.Errorf("Open(mysql://x) = %v, %v; want nil and an error", store, err)
	}
}
