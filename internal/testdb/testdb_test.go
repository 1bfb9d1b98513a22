package testdb

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestPostgresURLGivesFreshDatabases(t *testing.T) {
	var first string
	t.Run("a", func(t *testing.T) {
		first = PostgresURL(t)
		conn, err := pgx.Connect(context.Background(), first)
		if err != nil {
			t.Fatal(err)
		}
		// A leaked connection must not stop the drop.
		var tables int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("new database has %d tables", tables)
		}
		if second := PostgresURL(t); second == first {
			t.Errorf("two calls gave the same database %s", first)
		}
	})
	// The subtest's cleanup has dropped its databases.
	conn, err := pgx.Connect(context.Background(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	name := first[strings.LastIndex(first, "/")+1 : strings.Index(first, "?")]
	var exists bool
	if err := conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s outlived its test", name)
	}
}

func TestDatabaseName(t *testing.T) {
	long := strings.Repeat("VeryLongTestName/", 10)
	a, b := databaseName(long), databaseName(long)
	if a == b {
		t.Error("two names for one test are equal")
	}
	if len(a) > 63 {
		t.Errorf("%s is longer than PostgreSQL's 63 bytes", a)
	}
	if got := databaseName("TestX/sub case"); !strings.HasPrefix(got, "broker_test_testx_sub_case_") {
		t.Errorf("databaseName = %s", got)
	}
}
