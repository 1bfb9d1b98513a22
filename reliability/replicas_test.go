package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brokerdev/broker/internal/testdb"
	"github.com/brokerdev/broker/metadata"
)

// duplicator stands where a load balancer would, in front of the
// replicas' webhook endpoints, and does the worst thing one could: it
// delivers every notification to every replica at once.
type duplicator struct {
	srv      *httptest.Server
	client   *http.Client
	mu       sync.Mutex
	replicas []string
	// uploads counts upload notifications received (before fan-out).
	uploads  atomic.Int64
	inflight sync.WaitGroup
	// answers by status; created lists, per asset, the deliveries that
	// answered "created".
	statuses map[int]int
	created  map[string]int
	problems []string
	sent     int
}

func newDuplicator(t *testing.T) *duplicator {
	d := &duplicator{client: newClient(t, 60*time.Second, true), statuses: map[int]int{}, created: map[string]int{}}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *duplicator) setReplicas(urls []string) {
	d.mu.Lock()
	d.replicas = urls
	d.mu.Unlock()
}

func (d *duplicator) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var probe struct {
		NotificationType string                 `json:"notification_type"`
		Hook             struct{ Event string } `json:"hook"`
	}
	_ = json.Unmarshal(body, &probe)
	if probe.NotificationType == "upload" || probe.Hook.Event == "file.uploaded" {
		d.uploads.Add(1)
	}
	d.mu.Lock()
	replicas := d.replicas
	d.mu.Unlock()
	d.inflight.Add(len(replicas))
	var wg sync.WaitGroup
	for _, base := range replicas {
		wg.Add(1)
		go func() {
			defer d.inflight.Done()
			defer wg.Done()
			req := newRequest(http.MethodPost, base+r.URL.Path, "", bytes.NewReader(body))
			for _, h := range []string{"Content-Type", "X-Cld-Signature", "X-Cld-Timestamp", "X-Uc-Signature"} {
				if v := r.Header.Get(h); v != "" {
					req.Header.Set(h, v)
				}
			}
			ans, err := send(d.client, req)
			d.mu.Lock()
			defer d.mu.Unlock()
			d.sent++
			switch {
			case err != nil:
				d.problems = append(d.problems, fmt.Sprintf("%s%s: %v", base, r.URL.Path, err))
				return
			case ans.Status != http.StatusOK && ans.Status != http.StatusCreated:
				d.problems = append(d.problems, fmt.Sprintf("%s%s: %s", base, r.URL.Path, ans))
			}
			d.statuses[ans.Status]++
			if ans.Body["outcome"] == "created" {
				f, _ := ans.Body["file"].(map[string]any)
				id, _ := f["provider_id"].(string)
				d.created[id]++
			}
		}()
	}
	wg.Wait()
	w.WriteHeader(http.StatusOK)
}

// TestThreeReplicasOneDatabase runs three broker processes on one database
// behind a shared load: users sign at one replica, upload, and save at
// another (some twice, at different replicas; some never, leaving it to
// the provider's notification), while every notification is delivered to
// all three replicas at once. In the end every uploaded asset is recorded
// exactly once, for its uploader, and exactly one request, a save or a
// notification, created it.
func TestThreeReplicasOneDatabase(t *testing.T) {
	dbURL := testdb.PostgresURL(t)
	dup := newDuplicator(t)
	e := startEmulator(t, dup.srv.URL+"/webhooks/uploadcare")
	var replicas []*brokerProc
	var urls []string
	for range 3 {
		env := brokerEnv(dbURL, e)
		env["PUBLIC_URL"] = dup.srv.URL
		b := startBroker(t, env)
		replicas = append(replicas, b)
		urls = append(urls, b.URL)
	}
	dup.setReplicas(urls)
	view := openView(t, dbURL)
	c := newClient(t, 60*time.Second, true)

	const users, cldAssets, ucAssets, workers = 6, 48, 24, 6
	type asset struct {
		provider, id, user string
	}
	var (
		mu        sync.Mutex
		assets    []asset
		saves     = map[int]int{}
		created   = map[string]int{}
		answerIDs = map[string]map[string]bool{} // provider id -> file ids answered
		problems  []string
	)
	pick := func() string { return urls[rand.IntN(len(urls))] }
	save := func(a asset, tok, body string) {
		r, err := postJSON(c, pick()+"/save-metadata", tok, body)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("save %s: %v", a.id, err))
			return
		case r.Status != http.StatusCreated && r.Status != http.StatusOK:
			problems = append(problems, fmt.Sprintf("save %s: %s", a.id, r))
			return
		}
		saves[r.Status]++
		if r.Status == http.StatusCreated {
			created[a.id]++
		}
		if answerIDs[a.id] == nil {
			answerIDs[a.id] = map[string]bool{}
		}
		answerIDs[a.id][r.Body["file"].(map[string]any)["id"].(string)] = true
	}

	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				user := fmt.Sprintf("user%d", i%users)
				tok := token(t, user)
				var a asset
				var body string
				if i < cldAssets {
					ev, err := uploadCloudinary(c, pick(), tok)
					if err != nil {
						mu.Lock()
						problems = append(problems, err.Error())
						mu.Unlock()
						continue
					}
					a, body = asset{metadata.ProviderCloudinary, field(ev, "public_id"), user}, ev
				} else {
					uuid, err := uploadUploadcare(c, pick(), tok)
					if err != nil {
						mu.Lock()
						problems = append(problems, err.Error())
						mu.Unlock()
						continue
					}
					a, body = asset{metadata.ProviderUploadcare, uuid, user}, fmt.Sprintf(`{"uuid":%q}`, uuid)
				}
				mu.Lock()
				assets = append(assets, a)
				mu.Unlock()
				// A third are left to the notification, a third saved once,
				// a third saved twice at (likely) different replicas.
				for range i % 3 {
					save(a, tok, body)
				}
			}
		}()
	}
	for i := range cldAssets + ucAssets {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	// Every upload sends one upload notification; wait for all of them to
	// have been delivered to every replica.
	waitFor(t, "every upload notification", 60*time.Second, func() bool { return dup.uploads.Load() >= int64(len(assets)) })
	dup.inflight.Wait()

	for _, p := range problems {
		t.Error(p)
	}
	dup.mu.Lock()
	defer dup.mu.Unlock()
	for _, p := range dup.problems {
		t.Error(p)
	}
	records := map[string]map[string]string{
		metadata.ProviderCloudinary: view.records(t, metadata.ProviderCloudinary),
		metadata.ProviderUploadcare: view.records(t, metadata.ProviderUploadcare),
	}
	ids := map[string]string{}
	rows, err := view.pool.Query(t.Context(), `SELECT provider_id, id::text FROM files`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var pid, id string
		if err := rows.Scan(&pid, &id); err != nil {
			t.Fatal(err)
		}
		ids[pid] = id
	}
	rows.Close()
	for _, a := range assets {
		owner, ok := records[a.provider][a.id]
		switch {
		case !ok:
			t.Errorf("%s asset %s of %s was lost: not recorded", a.provider, a.id, a.user)
		case owner != a.user:
			t.Errorf("%s asset %s recorded for %q, want %q", a.provider, a.id, owner, a.user)
		}
		if n := created[a.id] + dup.created[a.id]; n != 1 {
			t.Errorf("%s asset %s was created by %d requests, want 1", a.provider, a.id, n)
		}
		for id := range answerIDs[a.id] {
			if id != ids[a.id] {
				t.Errorf("%s asset %s: a save answered file %s, the record is %s", a.provider, a.id, id, ids[a.id])
			}
		}
	}
	total := len(records[metadata.ProviderCloudinary]) + len(records[metadata.ProviderUploadcare])
	if total != len(assets) {
		t.Errorf("%d records for %d uploaded assets", total, len(assets))
	}
	t.Logf("3 replicas, %d assets (%d Cloudinary, %d Uploadcare) by %d users: saves %v; %d notifications delivered to each replica (%d deliveries: %v); %d records, each created once",
		len(assets), cldAssets, ucAssets, users, saves, dup.sent/len(urls), dup.sent, dup.statuses, total)
	for _, b := range replicas {
		if code := b.terminate(); code != 0 {
			t.Errorf("replica exited %d:\n%s", code, b.Output())
		}
	}
}
