package db_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/brokerdev/broker/db"
	"github.com/brokerdev/broker/db/storetest"
	"github.com/brokerdev/broker/internal/testdb"
	"github.com/brokerdev/broker/metadata"
)

// rlsDatabase is a fresh database laid out as on Neon, with two roles that
// are neither superusers nor BYPASSRLS: owner owns the database and the
// public schema (as neondb_owner does) and ran the migrations; app is the
// role docs/neon.md creates for the broker, with the grants given there.
type rlsDatabase struct {
	adminURL, ownerURL, appURL string
	admin                      *pgx.Conn
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func withUser(t *testing.T, rawURL, user, password string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// docsRoleSQL is the SQL block of docs/neon.md that creates the broker's
// role, so the documentation is what the test runs.
func docsRoleSQL(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/neon.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```sql\n(-- Run as the owner.*?)```").FindSubmatch(doc)
	if m == nil || !strings.Contains(string(m[1]), "CREATE ROLE broker_app") {
		t.Fatal("docs/neon.md has no SQL block creating broker_app")
	}
	return string(m[1])
}

func newRLSDatabase(t *testing.T) *rlsDatabase {
	t.Helper()
	ctx := context.Background()
	adminURL := testdb.PostgresURL(t)
	admin := connect(t, adminURL)
	var dbName string
	if err := admin.QueryRow(ctx, `SELECT current_database()`).Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	suffix := randomHex(t, 4)
	owner, app := "rls_owner_"+suffix, "rls_app_"+suffix
	ownerPass, appPass := randomHex(t, 16), randomHex(t, 16)
	ownerIdent, appIdent := pgx.Identifier{owner}.Sanitize(), pgx.Identifier{app}.Sanitize()

	// CREATEROLE, as neondb_owner has, to run the documented SQL itself.
	exec(t, admin, `CREATE ROLE `+ownerIdent+` LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB CREATEROLE PASSWORD '`+ownerPass+`'`)
	t.Cleanup(func() {
		// Before the database is dropped: take back what the roles own
		// or were granted here, so that they can go.
		drop := []string{`REASSIGN OWNED BY ` + ownerIdent + ` TO CURRENT_USER`, `DROP OWNED BY ` + ownerIdent, `DROP ROLE ` + ownerIdent}
		var appExists bool
		_ = admin.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, app).Scan(&appExists)
		if appExists {
			drop = append([]string{`DROP OWNED BY ` + appIdent, `DROP ROLE ` + appIdent}, drop...)
		}
		for _, sql := range drop {
			if _, err := admin.Exec(context.Background(), sql); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
	exec(t, admin, `ALTER DATABASE `+pgx.Identifier{dbName}.Sanitize()+` OWNER TO `+ownerIdent)
	exec(t, admin, `ALTER SCHEMA public OWNER TO `+ownerIdent)

	ownerURL := withUser(t, adminURL, owner, ownerPass)
	if err := db.MigratePostgres(ctx, ownerURL); err != nil {
		t.Fatalf("migrate as the owner: %v", err)
	}

	sql := docsRoleSQL(t)
	sql = strings.ReplaceAll(sql, "'replace-with-a-long-random-password'", "'"+appPass+"'")
	sql = strings.ReplaceAll(sql, "ON DATABASE neondb", "ON DATABASE "+pgx.Identifier{dbName}.Sanitize())
	sql = strings.ReplaceAll(sql, "broker_app", appIdent)
	ownerConn := connect(t, ownerURL)
	if _, err := ownerConn.Exec(ctx, sql); err != nil {
		t.Fatalf("the role SQL of docs/neon.md, run as the owner: %v", err)
	}
	return &rlsDatabase{adminURL: adminURL, ownerURL: ownerURL, appURL: withUser(t, adminURL, app, appPass), admin: admin}
}

// scoped runs stmts after acting for user exactly as the store does: one
// batch, set_config(…, true) first, one implicit transaction. It returns
// the user_id of every row the last statement returned, or its error.
func scoped(t *testing.T, conn *pgx.Conn, user string, stmts ...string) ([]string, error) {
	t.Helper()
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('broker.user_id', $1, true)`, user)
	for _, s := range stmts {
		b.Queue(s)
	}
	br := conn.SendBatch(context.Background(), b)
	defer br.Close()
	var users []string
	for i := 0; i <= len(stmts); i++ {
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		users = users[:0]
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				return nil, err
			}
			if len(vals) > 0 {
				if s, ok := vals[0].(string); ok {
					users = append(users, s)
				}
			}
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return users, nil
}

func saveAs(t *testing.T, store metadata.Store, user, provider, providerID string) metadata.File {
	t.Helper()
	f, created, err := store.SaveFile(context.Background(), metadata.File{
		Provider: provider, ProviderID: providerID, URL: "https://cdn.example/" + providerID,
		ResourceType: "image", UserID: user,
	})
	if err != nil || !created {
		t.Fatalf("save %s for %s: created=%v err=%v", providerID, user, created, err)
	}
	return f
}

func isRLSViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// A query that forgets its WHERE user_id, run as the broker's role through
// the broker's per-transaction setting, still sees and touches only the
// caller's rows; with no user set it sees nothing.
func TestRLSWithoutBypass(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := newRLSDatabase(t)

	store, err := db.OpenPostgres(ctx, rdb.appURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	aliceCld := saveAs(t, store, "alice", metadata.ProviderCloudinary, "uploads/alice/one")
	saveAs(t, store, "alice", metadata.ProviderUploadcare, "3c269810-c17b-4e2c-92b6-25622464d866")
	bobCld := saveAs(t, store, "bob", metadata.ProviderCloudinary, "uploads/bob/one")

	// The roles are what they claim, and the broker's own check agrees.
	for _, tc := range []struct {
		url    string
		bypass bool
	}{{rdb.appURL, false}, {rdb.ownerURL, false}, {rdb.adminURL, true}} {
		p, err := db.OpenPostgres(ctx, tc.url)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.BypassesRLS(ctx)
		p.Close()
		if err != nil || got != tc.bypass {
			t.Errorf("BypassesRLS as %s = %v, %v; want %v", strings.SplitN(strings.TrimPrefix(tc.url, "postgres://"), ":", 2)[0], got, err, tc.bypass)
		}
	}

	// The control: the rows exist, and a role that bypasses the policies
	// (the test's superuser) sees all three with the same query.
	if n := count(t, rdb.admin, `SELECT count(*) FROM files`); n != 3 {
		t.Fatalf("as a superuser, files holds %d rows, want 3", n)
	}

	app := connect(t, rdb.appURL)
	users, err := scoped(t, app, "alice", `SELECT user_id FROM files`)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || slices.ContainsFunc(users, func(u string) bool { return u != "alice" }) {
		t.Errorf("alice's unscoped SELECT returned rows of %v, want alice's two", users)
	}
	users, _ = scoped(t, app, "bob", `SELECT user_id FROM files ORDER BY created_at`)
	if !slices.Equal(users, []string{"bob"}) {
		t.Errorf("bob's unscoped SELECT returned rows of %v", users)
	}
	// Through the guides' views too.
	users, _ = scoped(t, app, "alice", `SELECT user_id FROM cloudinary_files`)
	if !slices.Equal(users, []string{"alice"}) {
		t.Errorf("alice's unscoped SELECT on cloudinary_files returned rows of %v", users)
	}

	// No user named: nothing, in a batch or in a plain statement, also on
	// the connection that acted for alice a moment ago.
	for _, user := range []string{"", "nobody"} {
		users, err = scoped(t, app, user, `SELECT user_id FROM files`)
		if err != nil || len(users) != 0 {
			t.Errorf("acting for %q: rows of %v (%v), want none", user, users, err)
		}
	}
	if n := count(t, app, `SELECT count(*) FROM files`); n != 0 {
		t.Errorf("a statement with no user set sees %d rows, want 0", n)
	}
	// FORCE: the owner of the table is bound as well.
	if n := count(t, connect(t, rdb.ownerURL), `SELECT count(*) FROM files`); n != 0 {
		t.Errorf("the table's owner sees %d rows with no user set, want 0", n)
	}

	// Unscoped writes stay within the caller's rows, in a transaction that
	// is rolled back so the rows stay for the checks after it.
	tx, err := app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exec(t, tx.Conn(), `SELECT set_config('broker.user_id', 'alice', true)`)
	if tag, err := tx.Exec(ctx, `UPDATE files SET url = 'https://cdn.example/hijacked'`); err != nil || tag.RowsAffected() != 2 {
		t.Errorf("alice's unscoped UPDATE: %v rows, %v; want her 2", tag.RowsAffected(), err)
	}
	if tag, err := tx.Exec(ctx, `DELETE FROM files WHERE provider = 'cloudinary'`); err != nil || tag.RowsAffected() != 1 {
		t.Errorf("alice's DELETE without user_id: %v rows, %v; want her 1", tag.RowsAffected(), err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, rdb.admin, `SELECT count(*) FROM files WHERE url LIKE '%hijacked'`); n != 0 {
		t.Fatalf("the rolled-back update is visible")
	}
	var bobURL string
	if err := rdb.admin.QueryRow(ctx, `SELECT url FROM files WHERE id = $1`, bobCld.ID).Scan(&bobURL); err != nil || bobURL != bobCld.URL {
		t.Errorf("bob's row: url %q, %v", bobURL, err)
	}

	// Writing a row for someone else is refused, in files and through a view.
	for _, stmt := range []string{
		`INSERT INTO files (provider, provider_id, url, resource_type, user_id) VALUES ('cloudinary', 'uploads/bob/planted', 'https://x', 'image', 'bob')`,
		`INSERT INTO cloudinary_files (public_id, media_url, resource_type, user_id) VALUES ('uploads/bob/planted2', 'https://x', 'image', 'bob')`,
		`UPDATE files SET user_id = 'bob'`,
	} {
		if _, err := scoped(t, app, "alice", stmt); !isRLSViolation(err) {
			t.Errorf("acting for alice, %q: err = %v, want a row-level security violation", stmt, err)
		}
	}
	// The guide's own INSERT for the user acting works.
	if _, err := scoped(t, app, "alice", `INSERT INTO cloudinary_files (public_id, media_url, resource_type, user_id) VALUES ('uploads/alice/guide', 'https://x', 'image', 'alice')`); err != nil {
		t.Errorf("the guide's INSERT acting for its own user: %v", err)
	}

	// Naming an asset lets a transaction read that one record, whoever
	// owns it (SaveFile's ownership check), and nothing else: neither the
	// owner's other rows nor a change to it.
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('broker.user_id', 'bob', true), set_config('broker.asset_provider', 'cloudinary', true), set_config('broker.asset_id', $1, true)`, aliceCld.ProviderID)
	b.Queue(`SELECT count(*) FROM files`)
	b.Queue(`DELETE FROM files WHERE provider_id = $1`, aliceCld.ProviderID)
	br := app.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		t.Fatal(err)
	}
	var visible int
	if err := br.QueryRow().Scan(&visible); err != nil || visible != 2 {
		t.Errorf("bob naming alice's asset sees %d rows (%v), want his own and that one", visible, err)
	}
	if tag, err := br.Exec(); err != nil || tag.RowsAffected() != 0 {
		t.Errorf("bob deleting the asset he may read: %d rows, %v; want 0", tag.RowsAffected(), err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}

	// The broker's role may not undo the protection.
	if _, err := app.Exec(ctx, `ALTER TABLE files DISABLE ROW LEVEL SECURITY`); err == nil {
		t.Errorf("the broker's role could disable row-level security")
	}
}

// The whole store conformance suite, connected as the broker's role of
// docs/neon.md: row-level security bound, nothing the store does breaks.
func TestStoreAsRoleWithoutBypass(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metadata.Store {
		rdb := newRLSDatabase(t)
		p, err := db.OpenPostgres(context.Background(), rdb.appURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		if bypass, err := p.BypassesRLS(context.Background()); err != nil || bypass {
			t.Fatalf("the store's role bypasses row-level security: %v %v", bypass, err)
		}
		return p
	})
}

// Once the owner has migrated, the application role can start with
// AUTO_MIGRATE=true: finding nothing pending needs no CREATE right.
func TestAppRoleMigratesWhenNothingIsPending(t *testing.T) {
	rdb := newRLSDatabase(t)
	if err := db.MigratePostgres(context.Background(), rdb.appURL); err != nil {
		t.Fatalf("migrate as the application role after the owner: %v", err)
	}
}
