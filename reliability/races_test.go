package reliability

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brokerdev/broker/internal/testdb"
	"github.com/brokerdev/broker/metadata"
)

// raceShot is one request of a race and what came back.
type raceShot struct {
	who    string // "alice", "bob" or "webhook"
	status int
	code   string
	fileID string
	err    error
}

// race fires all shots at once (they wait on one start signal) and returns
// their answers.
func race(shots []func() (reply, error), who []string) []raceShot {
	out := make([]raceShot, len(shots))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, shot := range shots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := shot()
			out[i] = raceShot{who: who[i], status: r.Status, code: r.code(), err: err}
			if f, ok := r.Body["file"].(map[string]any); ok {
				out[i].fileID, _ = f["id"].(string)
			}
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// TestConcurrentSavesOfOneAsset saves one asset many times at once: by its
// owner alone, by its owner and another user, and with the provider's
// notifications of it arriving at the same moment. Whatever the
// interleaving, exactly one request creates the record, every other one
// of the owner's finds that same record, the other user is refused, and
// one row remains, owned by the uploader. The suite runs with -race, which
// watches the broker's handlers here since they run in-process.
func TestConcurrentSavesOfOneAsset(t *testing.T) {
	dbURL := testdb.PostgresURL(t)
	e := startEmulator(t)
	s := startInProcess(t, dbURL, e, 10*time.Second)
	view := openView(t, dbURL)
	c := newClient(t, 30*time.Second, true)
	alice, bob := token(t, "alice"), token(t, "bob")
	const perUser, hooks = 16, 6

	// asset kinds: how alice uploads, what a save sends, and the signed
	// notification the provider would deliver.
	type asset struct {
		provider, id, body string
		notify             func() (reply, error)
	}
	kinds := []struct {
		name   string
		upload func() asset
	}{
		{"Cloudinary, signed upload response", func() asset {
			ev := mustUploadCloudinary(t, s.URL, alice)
			return asset{metadata.ProviderCloudinary, field(ev, "public_id"), ev, cloudinaryHook(c, s.URL, ev)}
		}},
		{"Cloudinary, three fields proven by the Admin API", func() asset {
			ev := mustUploadCloudinary(t, s.URL, alice)
			body := fmt.Sprintf(`{"public_id":%q,"secure_url":%q,"resource_type":"image"}`, field(ev, "public_id"), field(ev, "secure_url"))
			return asset{metadata.ProviderCloudinary, field(ev, "public_id"), body, cloudinaryHook(c, s.URL, ev)}
		}},
		{"Uploadcare", func() asset {
			uuid, params, err := uploadUploadcareParams(http.DefaultClient, s.URL, alice)
			if err != nil {
				t.Fatal(err)
			}
			return asset{metadata.ProviderUploadcare, uuid, fmt.Sprintf(`{"uuid":%q}`, uuid), uploadcareHook(c, s.URL, uuid, params)}
		}},
	}
	scenarios := []struct {
		name       string
		bob, hooks bool
	}{{"one user", false, false}, {"two users", true, false}, {"two users and the provider's notifications", true, true}}

	requests, assets := 0, 0
	for _, k := range kinds {
		for _, sc := range scenarios {
			t.Run(k.name+"/"+sc.name, func(t *testing.T) {
				a := k.upload()
				var shots []func() (reply, error)
				var who []string
				for range perUser {
					shots = append(shots, func() (reply, error) { return postJSON(c, s.URL+"/save-metadata", alice, a.body) })
					who = append(who, "alice")
					if sc.bob {
						shots = append(shots, func() (reply, error) { return postJSON(c, s.URL+"/save-metadata", bob, a.body) })
						who = append(who, "bob")
					}
				}
				if sc.hooks {
					for range hooks {
						shots = append(shots, a.notify)
						who = append(who, "webhook")
					}
				}
				answers := race(shots, who)
				requests += len(answers)
				assets++

				created, recordID := 0, ""
				for _, r := range answers {
					if r.status == http.StatusCreated {
						created++
						recordID = r.fileID
					}
				}
				if created != 1 {
					t.Errorf("%d requests answered 201, want exactly 1: %+v", created, answers)
				}
				for _, r := range answers {
					switch {
					case r.err != nil:
						t.Errorf("%s: %v", r.who, r.err)
					case r.who == "bob" && (r.status != http.StatusForbidden || r.code != "forbidden"):
						t.Errorf("bob saving alice's asset: %d %s, want 403 forbidden", r.status, r.code)
					case r.who != "bob" && r.status != http.StatusCreated && r.status != http.StatusOK:
						t.Errorf("%s: %d %s, want 201 or 200", r.who, r.status, r.code)
					case r.who != "bob" && r.fileID != "" && r.fileID != recordID:
						t.Errorf("%s got file %s, the record is %s", r.who, r.fileID, recordID)
					case r.who == "alice" && r.fileID == "":
						t.Errorf("alice's save answered without the file")
					}
				}
				var rows int
				var owner, id string
				err := view.pool.QueryRow(t.Context(), `SELECT count(*), min(user_id), min(id::text) FROM files WHERE provider = $1 AND provider_id = $2`, a.provider, a.id).Scan(&rows, &owner, &id)
				if err != nil {
					t.Fatal(err)
				}
				if rows != 1 || owner != "alice" || id != recordID {
					t.Errorf("%d rows for the asset, owner %q, id %s; want 1 row of alice's with id %s", rows, owner, id, recordID)
				}
			})
		}
	}
	if n := view.snapshot(t).Rows; n != assets {
		t.Errorf("%d rows after racing on %d assets", n, assets)
	}
	t.Logf("%d concurrent requests on %d assets; %d rows, each with one owner", requests, assets, assets)
}

// cloudinaryHook delivers the upload notification Cloudinary would send
// for the upload answer ev, signed as Cloudinary signs it.
func cloudinaryHook(c *http.Client, base, ev string) func() (reply, error) {
	var m map[string]any
	_ = json.Unmarshal([]byte(ev), &m)
	m["notification_type"] = "upload"
	body, _ := json.Marshal(m)
	header := cldNotification(string(body), time.Now().Unix())
	return func() (reply, error) {
		return send(c, newRequest(http.MethodPost, base+"/webhooks/cloudinary", "", strings.NewReader(string(body)), append(header, "Content-Type", "application/json")...))
	}
}

// uploadcareHook delivers Uploadcare's file.uploaded webhook for uuid,
// carrying the intent from the signed upload fields.
func uploadcareHook(c *http.Client, base, uuid string, params map[string]string) func() (reply, error) {
	body, _ := json.Marshal(map[string]any{
		"hook": map[string]any{"event": "file.uploaded", "project_pub_key": ucPublicKey},
		"data": map[string]any{"uuid": uuid, "metadata": map[string]string{metadata.IntentMetadataKey: params["metadata["+metadata.IntentMetadataKey+"]"]}},
	})
	header := ucNotification(string(body))
	return func() (reply, error) {
		return send(c, newRequest(http.MethodPost, base+"/webhooks/uploadcare", "", strings.NewReader(string(body)), append(header, "Content-Type", "application/json")...))
	}
}
