package db_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/brokerdev/broker/db"
	"github.com/brokerdev/broker/db/storetest"
	"github.com/brokerdev/broker/metadata"
)

// migratedSQLite returns a store on a fresh, migrated database file, and
// the file's path.
func migratedSQLite(t *testing.T) (*db.SQLite, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", "dir", "broker.db")
	if err := db.Migrate(ctx, "sqlite:"+path); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	s, err := db.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(s.Close)
	return s, path
}

func TestSQLiteStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metadata.Store {
		s, _ := migratedSQLite(t)
		return s
	})
}

func TestSQLiteInMemoryStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metadata.Store {
		s, err := db.OpenSQLite(context.Background(), ":memory:")
		if err != nil {
			t.Fatalf("OpenSQLite: %v", err)
		}
		t.Cleanup(s.Close)
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		return s
	})
}

// rawSQLite opens the file behind the store's back, as the sqlite3 shell
// would.
func rawSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func sqliteCount(t *testing.T, conn *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestSQLiteOpenCreatesFolderAndUsesWAL(t *testing.T) {
	t.Parallel()
	_, path := migratedSQLite(t)
	info, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatalf("the database folder: %v", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("the database folder is readable by others: %v", perm)
	}
	var mode string
	if err := rawSQLite(t, path).QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q (%v), want wal", mode, err)
	}
}

func TestSQLiteMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "broker.db")
	for i := range 3 {
		if err := db.MigrateSQLite(ctx, path); err != nil {
			t.Fatalf("MigrateSQLite #%d: %v", i+1, err)
		}
	}
	entries, err := os.ReadDir("migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	if got := sqliteCount(t, rawSQLite(t, path), `SELECT count(*) FROM schema_migrations`); got != len(entries) {
		t.Errorf("schema_migrations has %d rows, want %d", got, len(entries))
	}
}

// Two processes (here, two stores) migrating one file at once: the second
// waits for the first's lock and then finds the work done.
func TestSQLiteMigrateConcurrently(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "broker.db")
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.MigrateSQLite(context.Background(), path)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
}

// Records written by one store are there for the next one on the same
// file: what `broker dev` relies on across restarts.
func TestSQLiteRecordsSurviveReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, path := migratedSQLite(t)
	f := metadata.File{
		Provider: metadata.ProviderCloudinary, ProviderID: "uploads/dev-user/a", URL: "http://127.0.0.1/a.png",
		ResourceType: "image", UserID: "dev-user",
	}
	stored, created, err := s.SaveFile(ctx, f)
	if err != nil || !created {
		t.Fatalf("SaveFile: created=%v err=%v", created, err)
	}
	s.Close()

	again, err := db.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer again.Close()
	got, err := again.GetFile(ctx, "dev-user", stored.ID)
	if err != nil {
		t.Fatalf("GetFile after reopening: %v", err)
	}
	if !got.CreatedAt.Equal(stored.CreatedAt) || got.ProviderID != f.ProviderID {
		t.Errorf("after reopening: %+v, want %+v", got, stored)
	}
}

// Two stores on one file (a second `broker dev`, or the test's own
// process) write at the same time: the busy timeout and IMMEDIATE
// transactions make them take turns instead of failing with SQLITE_BUSY.
func TestSQLiteTwoStoresOnOneFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, path := migratedSQLite(t)
	b, err := db.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const perStore = 25
	asset := "uploads/shared/" + uuid.NewString()
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for _, s := range []*db.SQLite{a, b} {
		for i := range perStore {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f := metadata.File{
					Provider: metadata.ProviderCloudinary, ProviderID: asset, URL: "http://x/y",
					ResourceType: "image", UserID: "u",
				}
				if i%2 == 1 {
					f.ProviderID = uuid.NewString() // also plain, unrelated inserts
				}
				_, c, err := s.SaveFile(ctx, f)
				if err != nil {
					t.Errorf("SaveFile: %v", err)
					return
				}
				if c && f.ProviderID == asset {
					mu.Lock()
					created++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("the shared asset was created %d times, want 1", created)
	}
	if n := sqliteCount(t, rawSQLite(t, path), `SELECT count(*) FROM files`); n != 1+2*(perStore/2) {
		t.Errorf("files holds %d rows, want %d", n, 1+2*(perStore/2))
	}
}

// The Neon guides' SQL works on the dev database too.
func TestSQLiteGuideViews(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, path := migratedSQLite(t)
	conn := rawSQLite(t, path)
	before := time.Now().Add(-time.Minute)

	publicID := "uploads/guide/" + uuid.NewString()
	mediaURL := "https://res.cloudinary.com/demo/image/upload/v1/" + publicID + ".jpg"
	if _, err := conn.Exec(`INSERT INTO cloudinary_files (public_id, media_url, resource_type, user_id) VALUES (?, ?, ?, ?)`,
		publicID, mediaURL, "image", "guide-user"); err != nil {
		t.Fatalf("the Cloudinary guide's insert: %v", err)
	}
	fileID := uuid.NewString()
	if _, err := conn.Exec(`INSERT INTO uploadcare_files (file_id, file_url, user_id, upload_timestamp) VALUES (?, ?, ?, ?)`,
		fileID, "https://ucarecdn.com/"+fileID+"/", "guide-user", "2025-03-04 05:06:07.250"); err != nil {
		t.Fatalf("the Uploadcare guide's insert: %v", err)
	}

	c, err := s.GetByProviderID(ctx, "guide-user", metadata.ProviderCloudinary, publicID)
	if err != nil {
		t.Fatalf("the Cloudinary guide's row: %v", err)
	}
	if _, err := uuid.Parse(c.ID); err != nil || c.URL != mediaURL || c.ResourceType != "image" || c.CreatedAt.Before(before) {
		t.Errorf("the Cloudinary guide's insert stored %+v (id: %v)", c, err)
	}
	u, err := s.GetByProviderID(ctx, "guide-user", metadata.ProviderUploadcare, fileID)
	if err != nil {
		t.Fatalf("the Uploadcare guide's row: %v", err)
	}
	if want := time.Date(2025, 3, 4, 5, 6, 7, 250e6, time.UTC); u.ResourceType != "raw" || !u.CreatedAt.Equal(want) {
		t.Errorf("the Uploadcare guide's insert stored type=%s created_at=%v, want raw and %v", u.ResourceType, u.CreatedAt, want)
	}

	// Records saved through the store show up in the guides' SELECTs.
	saved, _, err := s.SaveFile(ctx, metadata.File{
		Provider: metadata.ProviderCloudinary, ProviderID: "uploads/guide/saved", URL: "https://x/saved.png",
		ResourceType: "image", UserID: "guide-user",
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	var id, ts string
	if err := conn.QueryRow(`SELECT id, upload_timestamp FROM cloudinary_files WHERE user_id = ? AND public_id = ?`,
		"guide-user", "uploads/guide/saved").Scan(&id, &ts); err != nil {
		t.Fatalf("the Cloudinary guide's select: %v", err)
	}
	if id != saved.ID || ts != "2026-01-02 03:04:05.678901" {
		t.Errorf("the view shows id=%s upload_timestamp=%s, want %s and 2026-01-02 03:04:05.678901", id, ts, saved.ID)
	}
	if n := sqliteCount(t, conn, `SELECT count(*) FROM uploadcare_files WHERE user_id = 'guide-user'`); n != 1 {
		t.Errorf("the Uploadcare guide's select finds %d rows, want 1", n)
	}
}

// Another process holding the write lock past the busy timeout makes the
// database unavailable (503), not a bug (500).
func TestSQLiteLockedFileIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, path := migratedSQLite(t)
	holder := rawSQLite(t, path)
	conn, err := holder.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA busy_timeout = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, `ROLLBACK`) //nolint:errcheck

	// A deadline shorter than the busy timeout keeps the test short; the
	// deadline and SQLITE_BUSY both mean "unavailable".
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, _, err = s.SaveFile(short, metadata.File{
		Provider: metadata.ProviderCloudinary, ProviderID: "locked", URL: "http://x", ResourceType: "image", UserID: "u",
	})
	if !errors.Is(err, metadata.ErrUnavailable) {
		t.Errorf("SaveFile on a locked file: %v, want ErrUnavailable", err)
	}
}
