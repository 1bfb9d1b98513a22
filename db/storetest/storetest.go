// Package storetest is the conformance suite every metadata.Store must pass,
// so that the PostgreSQL and SQLite stores behave alike: the HTTP layer and
// the commit use case count on these behaviours, not on a database.
//
// A store's test calls Run with a function that opens a fresh, empty,
// migrated store for the (sub)test it is given, and closes it in
// t.Cleanup. The subtests run in parallel, each on its own store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/brokerdev/broker/metadata"
)

// Run runs the suite against the stores open returns.
func Run(t *testing.T, open func(t *testing.T) metadata.Store) {
	tests := []struct {
		name string
		test func(t *testing.T, s metadata.Store)
	}{
		{"SaveCreates", testSaveCreates},
		{"SaveAssignsIDAndTime", testSaveAssignsIDAndTime},
		{"SaveSameAssetReturnsExisting", testSaveSameAssetReturnsExisting},
		{"SaveAssetOfAnotherUserReturnsTheirs", testSaveAssetOfAnotherUser},
		{"SameProviderIDOnTwoProviders", testSameProviderIDOnTwoProviders},
		{"GetByProviderID", testGetByProviderID},
		{"UnknownIDsAreNotFound", testUnknownIDs},
		{"OtherUsersFilesAreInvisible", testPerUserScoping},
		{"ListEmpty", testListEmpty},
		{"ListPagesEveryFileOnceNewestFirst", testListPagination},
		{"CursorSurvivesInserts", testCursorSurvivesInserts},
		{"ListFilters", testListFilters},
		{"DeleteThenGet", testDeleteThenGet},
		{"DeleteTwice", testDeleteTwice},
		{"SaveAfterDeleteCreatesAgain", testSaveAfterDelete},
		{"ConcurrentSaveCreatesOnce", testConcurrentSave},
		{"CanceledContext", testCanceledContext},
		{"Ping", testPing},
		{"FindAssetWhoeverOwnsIt", testFindAsset},
		{"WebhookDeliveriesRecordedOnce", testWebhookDeliveries},
		{"PruneWebhooksByAge", testPruneWebhooks},
		{"ConcurrentRecordWebhook", testConcurrentRecordWebhook},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, open(t))
		})
	}
}

// newFile returns a complete, valid file of the user with its own asset.
func newFile(userID string) metadata.File {
	id := uuid.NewString()
	return metadata.File{
		ID:               id,
		Provider:         metadata.ProviderCloudinary,
		ProviderID:       "uploads/" + userID + "/" + id,
		URL:              "https://res.cloudinary.com/demo/image/upload/v1/uploads/" + id + ".png",
		ResourceType:     "image",
		UserID:           userID,
		Bytes:            ptr(int64(12345)),
		Format:           ptr("png"),
		MimeType:         ptr("image/png"),
		Width:            ptr(640),
		Height:           ptr(480),
		OriginalFilename: ptr("cat.png"),
		CreatedAt:        time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC),
	}
}

func ptr[T any](v T) *T { return &v }

func save(t *testing.T, s metadata.Store, f metadata.File) metadata.File {
	t.Helper()
	stored, created, err := s.SaveFile(context.Background(), f)
	if err != nil {
		t.Fatalf("SaveFile(%s): %v", f.ProviderID, err)
	}
	if !created {
		t.Fatalf("SaveFile(%s): created = false for a new asset", f.ProviderID)
	}
	return stored
}

// sameFile compares records field by field, times by instant.
func sameFile(t *testing.T, what string, got, want metadata.File) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s: created_at = %v, want %v", what, got.CreatedAt, want.CreatedAt)
	}
	got.CreatedAt, want.CreatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, describe(got), describe(want))
	}
}

func describe(f metadata.File) string {
	show := func(v any) string {
		rv := reflect.ValueOf(v)
		if rv.IsNil() {
			return "nil"
		}
		return fmt.Sprint(rv.Elem().Interface())
	}
	return fmt.Sprintf("{id=%s provider=%s provider_id=%s url=%s type=%s user=%s bytes=%s format=%s mime=%s w=%s h=%s name=%s at=%s}",
		f.ID, f.Provider, f.ProviderID, f.URL, f.ResourceType, f.UserID, show(f.Bytes), show(f.Format),
		show(f.MimeType), show(f.Width), show(f.Height), show(f.OriginalFilename), f.CreatedAt.Format(time.RFC3339Nano))
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("%s: err = %v, want ErrNotFound", what, err)
	}
}

func testSaveCreates(t *testing.T, s metadata.Store) {
	ctx := context.Background()
	full := newFile("alice")
	sparse := newFile("alice")
	// Fields a provider may not report round-trip as nil, not as zero.
	sparse.Provider = metadata.ProviderUploadcare
	sparse.ProviderID = uuid.NewString()
	sparse.ResourceType = "raw"
	sparse.Bytes, sparse.Format, sparse.MimeType, sparse.Width, sparse.Height, sparse.OriginalFilename = nil, nil, nil, nil, nil, nil
	// Zero values are values, not absences.
	zeros := newFile("alice")
	zeros.Bytes, zeros.Width, zeros.Height, zeros.Format = ptr(int64(0)), ptr(0), ptr(0), ptr("")
	// User ids are opaque text.
	unicode := newFile("zoë|auth0:42 ✓")

	for _, f := range []metadata.File{full, sparse, zeros, unicode} {
		stored := save(t, s, f)
		sameFile(t, "SaveFile result", stored, f)
		got, err := s.GetFile(ctx, f.UserID, f.ID)
		if err != nil {
			t.Fatalf("GetFile: %v", err)
		}
		sameFile(t, "GetFile", got, f)
		if got.CreatedAt.Location() != time.UTC {
			t.Errorf("GetFile: created_at in %v, want UTC", got.CreatedAt.Location())
		}
	}
}

func testSaveAssignsIDAndTime(t *testing.T, s metadata.Store) {
	f := newFile("alice")
	f.ID = ""
	f.CreatedAt = time.Time{}
	before := time.Now().Add(-time.Second)
	stored := save(t, s, f)
	after := time.Now().Add(time.Second)
	if _, err := uuid.Parse(stored.ID); err != nil {
		t.Errorf("assigned id %q is not a UUID: %v", stored.ID, err)
	}
	if stored.CreatedAt.Before(before) || stored.CreatedAt.After(after) {
		t.Errorf("assigned created_at %v is not now", stored.CreatedAt)
	}
	if stored.CreatedAt.Location() != time.UTC || stored.CreatedAt.Nanosecond()%1000 != 0 {
		t.Errorf("assigned created_at %v: want UTC with microsecond precision", stored.CreatedAt)
	}
	got, err := s.GetFile(context.Background(), "alice", stored.ID)
	if err != nil {
		t.Fatalf("GetFile: %v", err)
	}
	sameFile(t, "GetFile", got, stored)

	// A given time keeps microseconds, what every store can hold.
	g := newFile("alice")
	g.CreatedAt = time.Date(2026, 5, 6, 7, 8, 9, 987654321, time.FixedZone("CEST", 2*3600))
	stored = save(t, s, g)
	want := time.Date(2026, 5, 6, 5, 8, 9, 987654000, time.UTC)
	if !stored.CreatedAt.Equal(want) {
		t.Errorf("created_at %v stored as %v, want %v", g.CreatedAt, stored.CreatedAt, want)
	}
}

func testSaveSameAssetReturnsExisting(t *testing.T, s metadata.Store) {
	first := save(t, s, newFile("alice"))
	again := newFile("alice")
	again.ProviderID = first.ProviderID
	again.URL = "https://example.com/other.png"
	stored, created, err := s.SaveFile(context.Background(), again)
	if err != nil {
		t.Fatalf("SaveFile again: %v", err)
	}
	if created {
		t.Error("SaveFile again: created = true")
	}
	// The first record wins; the second call changes nothing.
	sameFile(t, "SaveFile again", stored, first)
	got, err := s.GetFile(context.Background(), "alice", first.ID)
	if err != nil {
		t.Fatalf("GetFile: %v", err)
	}
	sameFile(t, "GetFile after second save", got, first)
	wantNotFound(t, "GetFile(second id)", func() error { _, err := s.GetFile(context.Background(), "alice", again.ID); return err }())
}

func testSaveAssetOfAnotherUser(t *testing.T, s metadata.Store) {
	first := save(t, s, newFile("alice"))
	claim := newFile("mallory")
	claim.ProviderID = first.ProviderID
	stored, created, err := s.SaveFile(context.Background(), claim)
	if err != nil {
		t.Fatalf("SaveFile by another user: %v", err)
	}
	if created {
		t.Error("SaveFile by another user: created = true")
	}
	// The caller sees alice's record and answers 409.
	sameFile(t, "SaveFile by another user", stored, first)
}

func testSameProviderIDOnTwoProviders(t *testing.T, s metadata.Store) {
	a := newFile("alice")
	b := newFile("alice")
	b.Provider = metadata.ProviderUploadcare
	b.ProviderID = a.ProviderID
	save(t, s, a)
	save(t, s, b)
}

func testGetByProviderID(t *testing.T, s metadata.Store) {
	ctx := context.Background()
	f := save(t, s, newFile("alice"))
	got, err := s.GetByProviderID(ctx, "alice", f.Provider, f.ProviderID)
	if err != nil {
		t.Fatalf("GetByProviderID: %v", err)
	}
	sameFile(t, "GetByProviderID", got, f)
	_, err = s.GetByProviderID(ctx, "alice", metadata.ProviderUploadcare, f.ProviderID)
	wantNotFound(t, "GetByProviderID(other provider)", err)
	_, err = s.GetByProviderID(ctx, "alice", f.Provider, f.ProviderID+"x")
	wantNotFound(t, "GetByProviderID(other asset)", err)
}

func testUnknownIDs(t *testing.T, s metadata.Store) {
	ctx := context.Background()
	save(t, s, newFile("alice"))
	// An id that is not even a UUID is just another id nobody has.
	for _, id := range []string{uuid.NewString(), "not-a-uuid", ""} {
		_, err := s.GetFile(ctx, "alice", id)
		wantNotFound(t, fmt.Sprintf("GetFile(%q)", id), err)
		wantNotFound(t, fmt.Sprintf("DeleteFile(%q)", id), s.DeleteFile(ctx, "alice", id))
	}
}

func testPerUserScoping(t *testing.T, s metadata.Store) {
	ctx := context.Background()
	f := save(t, s, newFile("alice"))
	mine := save(t, s, newFile("bob"))

	_, err := s.GetFile(ctx, "bob", f.ID)
	wantNotFound(t, "GetFile of alice's file as bob", err)
	_, err = s.GetByProviderID(ctx, "bob", f.Provider, f.ProviderID)
	wantNotFound(t, "GetByProviderID of alice's file as bob", err)
	wantNotFound(t, "DeleteFile of alice's file as bob", s.DeleteFile(ctx, "bob", f.ID))
	// A prefix or case variant of a user id is another user.
	_, err = s.GetFile(ctx, "Alice", f.ID)
	wantNotFound(t, "GetFile as Alice", err)

	list, err := s.ListFiles(ctx, "bob", metadata.ListQuery{Limit: 100})
	if err != nil {
		t.Fatalf("ListFiles: %v", err)
	}
	if len(list) != 1 || list[0].ID != mine.ID {
		t.Errorf("bob lists %v, want only his own file %s", ids(list), mine.ID)
	}
	if _, err := s.GetFile(ctx, "alice", f.ID); err != nil {
		t.Errorf("alice's file after bob's delete attempt: %v", err)
	}
}

func testListEmpty(t *testing.T, s metadata.Store) {
	save(t, s, newFile("alice"))
	list, err := s.ListFiles(context.Background(), "nobody", metadata.ListQuery{Limit: 10})
	if err != nil {
		t.Fatalf("ListFiles: %v", err)
	}
	if len(list) != 0 {
		t.Errorf("ListFiles of a user without files: %v", ids(list))
	}
}

// seedTimeline saves n files of the user whose created_at values go back in
// time in steps, three files sharing each instant, so that the order must
// fall back to the id. Another user's files are interleaved and must never
// show up. It returns the user's files in the expected list order.
func seedTimeline(t *testing.T, s metadata.Store, userID string, n int, start time.Time) []metadata.File {
	t.Helper()
	var files []metadata.File
	for i := range n {
		f := newFile(userID)
		f.CreatedAt = start.Add(-time.Duration(i/3) * time.Minute)
		if i%4 == 0 {
			f.Bytes, f.Format = nil, nil
		}
		files = append(files, save(t, s, f))
		other := newFile("stranger")
		other.CreatedAt = f.CreatedAt
		save(t, s, other)
	}
	sortNewestFirst(files)
	return files
}

// sortNewestFirst is the contract's order: created_at descending, then id
// descending. Ids are lower-case canonical UUIDs, whose string order is
// their byte order.
func sortNewestFirst(files []metadata.File) {
	slices.SortFunc(files, func(a, b metadata.File) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
}

// listAll pages through the user's files with the given page size,
// calling between(pageNumber) after each page.
func listAll(t *testing.T, s metadata.Store, userID string, q metadata.ListQuery, between func(page int)) []metadata.File {
	t.Helper()
	var all []metadata.File
	for page := 1; ; page++ {
		if page > 100 {
			t.Fatal("ListFiles: more than 100 pages; the cursor does not advance")
		}
		got, err := s.ListFiles(context.Background(), userID, q)
		if err != nil {
			t.Fatalf("ListFiles page %d: %v", page, err)
		}
		if len(got) > q.Limit {
			t.Fatalf("ListFiles page %d: %d files, limit %d", page, len(got), q.Limit)
		}
		all = append(all, got...)
		if len(got) < q.Limit {
			return all
		}
		last := got[len(got)-1]
		q.After = metadata.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
		if between != nil {
			between(page)
		}
	}
}

func ids(files []metadata.File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.ID
	}
	return out
}

func sameList(t *testing.T, what string, got, want []metadata.File) {
	t.Helper()
	if !slices.Equal(ids(got), ids(want)) {
		t.Errorf("%s:\n got %v\nwant %v", what, ids(got), ids(want))
		return
	}
	for i := range got {
		sameFile(t, fmt.Sprintf("%s[%d]", what, i), got[i], want[i])
	}
}

func testListPagination(t *testing.T, s metadata.Store) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	want := seedTimeline(t, s, "alice", 25, start)
	got := listAll(t, s, "alice", metadata.ListQuery{Limit: 7}, nil)
	sameList(t, "pages of 7", got, want)

	// A page size that divides the total ends with an empty page.
	got = listAll(t, s, "alice", metadata.ListQuery{Limit: 5}, nil)
	sameList(t, "pages of 5", got, want)

	got = listAll(t, s, "alice", metadata.ListQuery{Limit: 100}, nil)
	sameList(t, "one page", got, want)
}

func testCursorSurvivesInserts(t *testing.T, s metadata.Store) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	want := seedTimeline(t, s, "alice", 25, start)

	var older []metadata.File
	got := listAll(t, s, "alice", metadata.ListQuery{Limit: 7}, func(page int) {
		// Newer files appear while the user pages: they belong before
		// the cursor and must not show up later.
		n := newFile("alice")
		n.CreatedAt = start.Add(time.Duration(page) * time.Hour)
		save(t, s, n)
		// A file older than everything (an import, a late webhook) is
		// after the cursor and must show up exactly once.
		o := newFile("alice")
		o.CreatedAt = start.Add(-time.Duration(page) * 24 * time.Hour)
		older = append(older, save(t, s, o))
	})
	want = append(want, older...)
	sortNewestFirst(want)
	sameList(t, "pages with inserts between them", got, want)
}

func testListFilters(t *testing.T, s metadata.Store) {
	var all []metadata.File
	kinds := []struct{ provider, resourceType string }{
		{metadata.ProviderCloudinary, "image"},
		{metadata.ProviderCloudinary, "video"},
		{metadata.ProviderCloudinary, "raw"},
		{metadata.ProviderUploadcare, "raw"},
		{metadata.ProviderUploadcare, "image"},
	}
	start := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	for i := range 15 {
		k := kinds[i%len(kinds)]
		f := newFile("alice")
		f.Provider, f.ResourceType = k.provider, k.resourceType
		f.CreatedAt = start.Add(time.Duration(i) * time.Second)
		all = append(all, save(t, s, f))
	}
	sortNewestFirst(all)

	for _, q := range []metadata.ListQuery{
		{Provider: metadata.ProviderCloudinary},
		{Provider: metadata.ProviderUploadcare},
		{ResourceType: "raw"},
		{ResourceType: "image"},
		{Provider: metadata.ProviderUploadcare, ResourceType: "raw"},
		{Provider: metadata.ProviderCloudinary, ResourceType: "video"},
		{ResourceType: "nothing-like-it"},
	} {
		var want []metadata.File
		for _, f := range all {
			if (q.Provider == "" || f.Provider == q.Provider) && (q.ResourceType == "" || f.ResourceType == q.ResourceType) {
				want = append(want, f)
			}
		}
		q.Limit = 2 // filters and the cursor work together
		got := listAll(t, s, "alice", q, nil)
		sameList(t, fmt.Sprintf("provider=%q resource_type=%q", q.Provider, q.ResourceType), got, want)
	}
}

func testDeleteThenGet(t *testing.T, s metadata.Store) {
	ctx := context.Background()
	f := save(t, s, newFile("alice"))
	keep := save(t, s, newFile("alice"))
	if err := s.DeleteFile(ctx, "alice", f.ID); err != nil {
		t.Fatalf("DeleteFile: %v", err)
	}
	_, err := s.GetFile(ctx, "alice", f.ID)
	wantNotFound(t, "GetFile after delete", err)
	_, err = s.GetByProviderID(ctx, "alice", f.Provider, f.ProviderID)
	wantNotFound(t, "GetByProviderID after delete", err)
	list, err := s.ListFiles(ctx, "alice", metadata.ListQuery{Limit: 10})
	if err != nil {
		t.Fatalf("ListFiles: %v", err)
	}
	sameList(t, "ListFiles after delete", list, []metadata.File{keep})
}

func testDeleteTwice(t *testing.T, s metadata.Store) {
	ctx := context.Background()
	f := save(t, s, newFile("alice"))
	if err := s.DeleteFile(ctx, "alice", f.ID); err != nil {
		t.Fatalf("DeleteFile: %v", err)
	}
	wantNotFound(t, "second DeleteFile", s.DeleteFile(ctx, "alice", f.ID))
}

func testSaveAfterDelete(t *testing.T, s metadata.Store) {
	ctx := context.Background()
	f := save(t, s, newFile("alice"))
	if err := s.DeleteFile(ctx, "alice", f.ID); err != nil {
		t.Fatalf("DeleteFile: %v", err)
	}
	again := newFile("bob")
	again.ProviderID = f.ProviderID
	stored := save(t, s, again)
	sameFile(t, "SaveFile after delete", stored, again)
}

func testConcurrentSave(t *testing.T, s metadata.Store) {
	const n = 20
	asset := newFile("alice").ProviderID
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		results []metadata.File
		start   = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := newFile(fmt.Sprintf("user-%d", i%3))
			f.ProviderID = asset
			<-start
			stored, c, err := s.SaveFile(context.Background(), f)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("SaveFile: %v", err)
				return
			}
			if c {
				created++
			}
			results = append(results, stored)
		}()
	}
	close(start)
	wg.Wait()
	if created != 1 {
		t.Errorf("%d of %d concurrent saves created the record, want exactly 1", created, n)
	}
	// Every caller, creator or not, gets the one record back.
	for i := 1; i < len(results); i++ {
		sameFile(t, "concurrent save result", results[i], results[0])
	}
}

func testCanceledContext(t *testing.T, s metadata.Store) {
	f := save(t, s, newFile("alice"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: err = %v, want context.Canceled", what, err)
		}
		if errors.Is(err, metadata.ErrUnavailable) {
			t.Errorf("%s with a canceled context: a gone client is not an unavailable database: %v", what, err)
		}
	}
	_, err := s.GetFile(ctx, "alice", f.ID)
	check("GetFile", err)
	_, err = s.ListFiles(ctx, "alice", metadata.ListQuery{Limit: 10})
	check("ListFiles", err)
	_, _, err = s.SaveFile(ctx, newFile("alice"))
	check("SaveFile", err)
	check("DeleteFile", s.DeleteFile(ctx, "alice", f.ID))
	if _, err := s.GetFile(context.Background(), "alice", f.ID); err != nil {
		t.Errorf("the file after a canceled delete: %v", err)
	}
}

func testPing(t *testing.T, s metadata.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testFindAsset(t *testing.T, s metadata.Store) {
	ctx := context.Background()
	alice := save(t, s, newFile("alice"))
	bob := save(t, s, newFile("bob"))
	for _, want := range []metadata.File{alice, bob} {
		got, err := s.FindAsset(ctx, want.Provider, want.ProviderID)
		if err != nil {
			t.Fatalf("FindAsset(%s): %v", want.ProviderID, err)
		}
		sameFile(t, "FindAsset", got, want)
	}
	_, err := s.FindAsset(ctx, metadata.ProviderUploadcare, alice.ProviderID)
	wantNotFound(t, "FindAsset(other provider)", err)
	_, err = s.FindAsset(ctx, alice.Provider, alice.ProviderID+"x")
	wantNotFound(t, "FindAsset(other asset)", err)
	if err := s.DeleteFile(ctx, "alice", alice.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindAsset(ctx, alice.Provider, alice.ProviderID)
	wantNotFound(t, "FindAsset(deleted)", err)
}

// webhookKey is a distinct 32-byte key per name.
func webhookKey(name string) []byte {
	k := make([]byte, 32)
	copy(k, name)
	return k
}

func delivered(t *testing.T, s metadata.Store, provider string, key []byte) bool {
	t.Helper()
	seen, err := s.WebhookDelivered(context.Background(), provider, key)
	if err != nil {
		t.Fatalf("WebhookDelivered: %v", err)
	}
	return seen
}

func testWebhookDeliveries(t *testing.T, s metadata.Store) {
	ctx := context.Background()
	a, b := webhookKey("a"), webhookKey("b")
	if delivered(t, s, metadata.ProviderCloudinary, a) {
		t.Fatal("a key nobody recorded is delivered")
	}
	at := time.Now()
	for range 2 {
		// Recording again is no error: concurrent deliveries both record.
		if err := s.RecordWebhook(ctx, metadata.ProviderCloudinary, a, at); err != nil {
			t.Fatalf("RecordWebhook: %v", err)
		}
	}
	if !delivered(t, s, metadata.ProviderCloudinary, a) {
		t.Error("a recorded key is not delivered")
	}
	if delivered(t, s, metadata.ProviderUploadcare, a) {
		t.Error("a key recorded for Cloudinary is delivered for Uploadcare")
	}
	if delivered(t, s, metadata.ProviderCloudinary, b) {
		t.Error("another key is delivered")
	}
}

func testPruneWebhooks(t *testing.T, s metadata.Store) {
	ctx := context.Background()
	now := time.Now()
	old, fresh := webhookKey("old"), webhookKey("fresh")
	if err := s.RecordWebhook(ctx, metadata.ProviderUploadcare, old, now.Add(-8*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordWebhook(ctx, metadata.ProviderUploadcare, fresh, now); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneWebhooks(ctx, now.Add(-7*24*time.Hour))
	if err != nil {
		t.Fatalf("PruneWebhooks: %v", err)
	}
	if n != 1 {
		t.Errorf("PruneWebhooks removed %d, want 1", n)
	}
	if delivered(t, s, metadata.ProviderUploadcare, old) {
		t.Error("a pruned delivery is still delivered")
	}
	if !delivered(t, s, metadata.ProviderUploadcare, fresh) {
		t.Error("a fresh delivery was pruned")
	}
}

func testConcurrentRecordWebhook(t *testing.T, s metadata.Store) {
	key := webhookKey("same")
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := s.RecordWebhook(context.Background(), metadata.ProviderUploadcare, key, time.Now()); err != nil {
				t.Errorf("RecordWebhook: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if !delivered(t, s, metadata.ProviderUploadcare, key) {
		t.Error("the delivery is not recorded")
	}
}
