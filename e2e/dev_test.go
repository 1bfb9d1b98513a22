package e2e

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The accounts `broker dev` is given through the environment in these
// tests; without them it generates its own.
const (
	devUCPublicKey = "devpublickey00000000"
	devUCSecretKey = "dev-uploadcare-secret"
)

// devEnv is the environment of a `broker dev` run with fixed credentials.
func devEnv() map[string]string {
	return map[string]string{
		"ADDR":                  "127.0.0.1:0",
		"CLOUDINARY_URL":        cloudinaryURL,
		"UPLOADCARE_PUBLIC_KEY": devUCPublicKey,
		"UPLOADCARE_SECRET_KEY": devUCSecretKey,
		"AUTH_JWT_SECRET":       jwtSecret,
	}
}

var devTokenLine = regexp.MustCompile(`(?m)^  export BROKER_TOKEN=([\w-]+\.[\w-]+\.[\w-]+)$`)

// devToken checks the start-up banner of p and returns the token it
// printed for dev-user.
func devToken(t *testing.T, p *process) string {
	t.Helper()
	out := p.Output()
	for _, want := range []string{
		"Demo page   " + p.URL + "/\n",
		"Emulator    " + p.URL + "/emulator/",
		"A token for dev-user, valid for 24 h",
		"curl -s -H \"Authorization: Bearer $BROKER_TOKEN\" " + p.URL + "/files\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("broker dev did not print %q:\n%s", want, out)
		}
	}
	m := devTokenLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("broker dev printed no token:\n%s", out)
	}
	return m[1]
}

// postMultipart posts fields and a file part named "file", as a browser
// form does, and decodes the JSON answer.
func postMultipart(t *testing.T, target string, fields map[string]string, name string, data []byte) reply {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(data)
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return call(t, "POST", target, "", mw.FormDataContentType(), &buf)
}

// devUpload is what the demo page does, with Go's HTTP client: sign, upload
// straight to the URL the broker names (the emulator on the same
// listener), save the provider's answer. It returns the saved record.
func devUpload(t *testing.T, p *process, tok, provider, name string, data []byte) map[string]any {
	t.Helper()
	sig := call(t, "GET", p.URL+"/generate-signature?provider="+provider, tok, "", nil)
	if sig.Status != 200 {
		t.Fatalf("generate-signature %s: %d %s", provider, sig.Status, sig.Raw)
	}
	target, _ := sig.Body["upload_url"].(string)
	if !strings.HasPrefix(target, p.URL+"/emulator/"+provider+"/") {
		t.Fatalf("%s upload_url %q is not the dev emulator under %s/emulator/", provider, target, p.URL)
	}
	fields := map[string]string{}
	params, _ := sig.Body["params"].(map[string]any)
	for k, v := range params {
		fields[k], _ = v.(string)
	}
	var evidence string
	switch provider {
	case "cloudinary":
		fields["api_key"], _ = sig.Body["api_key"].(string)
		fields["signature"], _ = sig.Body["signature"].(string)
		up := postMultipart(t, target, fields, name, data)
		if up.Status != 200 {
			t.Fatalf("upload to %s: %d %s", target, up.Status, up.Raw)
		}
		evidence = up.Raw
	case "uploadcare":
		up := postMultipart(t, target, fields, name, data)
		uuid, _ := up.Body["file"].(string)
		if up.Status != 200 || uuid == "" {
			t.Fatalf("upload to %s: %d %s", target, up.Status, up.Raw)
		}
		evidence = `{"provider":"uploadcare","uuid":"` + uuid + `"}`
	}
	// 200 is right too: the emulator's webhook to the broker may have
	// recorded the file first.
	saved := call(t, "POST", p.URL+"/save-metadata", tok, "application/json", strings.NewReader(evidence))
	if saved.Status != 201 && saved.Status != 200 {
		t.Fatalf("save-metadata %s: %d %s", provider, saved.Status, saved.Raw)
	}
	f := saved.file()
	if f["user_id"] != "dev-user" || f["provider"] != provider {
		t.Fatalf("saved %v, want a %s file of dev-user", f, provider)
	}
	return f
}

// devFileIDs lists the ids of the user's files, newest first.
func devFileIDs(t *testing.T, p *process, tok string) []string {
	t.Helper()
	r := call(t, "GET", p.URL+"/files?limit=100", tok, "", nil)
	if r.Status != 200 {
		t.Fatalf("GET /files: %d %s", r.Status, r.Raw)
	}
	files, _ := r.Body["files"].([]any)
	ids := []string{}
	for _, f := range files {
		id, _ := f.(map[string]any)["id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// devPNG is a valid 1×1 PNG.
var devPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")

// readCredentials returns .broker/credentials.json of dir, checking it is
// private to its owner.
func readCredentials(t *testing.T, dir string) (raw []byte, creds map[string]string) {
	t.Helper()
	path := filepath.Join(dir, ".broker", "credentials.json")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("broker dev kept no credentials: %v", err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("%s has mode %o, want 600", path, mode)
	}
	raw, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &creds); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, raw)
	}
	for _, name := range []string{"CLOUDINARY_CLOUD_NAME", "CLOUDINARY_API_KEY", "CLOUDINARY_API_SECRET",
		"UPLOADCARE_PUBLIC_KEY", "UPLOADCARE_SECRET_KEY", "UPLOADCARE_WEBHOOK_SECRET", "AUTH_JWT_SECRET"} {
		if creds[name] == "" {
			t.Errorf("%s lacks %s:\n%s", path, name, raw)
		}
	}
	return raw, creds
}

// TestDevZeroSetupSurvivesRestart is a newcomer's first minutes: `broker
// dev` with nothing configured generates and keeps credentials, serves the
// demo page, takes a signed upload for each provider through its own
// emulator, and after a restart in the same folder still accepts the old
// token, lists the files and serves their bytes.
func TestDevZeroSetupSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	p := startIn(t, dir, map[string]string{"ADDR": "127.0.0.1:0"}, "dev")
	tok := devToken(t, p)
	credsBefore, _ := readCredentials(t, dir)
	for _, name := range []string{"dev.db", "emulator"} {
		if _, err := os.Stat(filepath.Join(dir, ".broker", name)); err != nil {
			t.Errorf("broker dev keeps no %s in .broker: %v", name, err)
		}
	}

	status, page := fetch(t, p.URL+"/")
	if status != 200 || !bytes.Contains(page, []byte("<title>Broker demo</title>")) {
		t.Fatalf("GET / = %d, not the demo page:\n%.300s", status, page)
	}
	conf := call(t, "GET", p.URL+"/demo/config.json", "", "", nil)
	if conf.Body["dev_token"] != tok {
		t.Errorf("the demo page is handed %v, not the printed token", conf.Body["dev_token"])
	}

	saved := map[string]map[string]any{}
	for _, provider := range []string{"cloudinary", "uploadcare"} {
		f := devUpload(t, p, tok, provider, "pixel.png", devPNG)
		url, _ := f["url"].(string)
		if !strings.HasPrefix(url, p.URL+"/emulator/"+provider+"/") {
			t.Errorf("%s file URL %q is not served by the dev emulator", provider, url)
		}
		if status, body := fetch(t, url); status != 200 || !bytes.Equal(body, devPNG) {
			t.Errorf("GET %s = %d, %d bytes; want the uploaded PNG", url, status, len(body))
		}
		saved[provider] = f
	}
	want := []string{saved["uploadcare"]["id"].(string), saved["cloudinary"]["id"].(string)}
	if got := devFileIDs(t, p, tok); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("files = %v, want %v", got, want)
	}

	// Restart in the same folder, on the same port: the file URLs name it.
	p.Stop(t)
	p = startIn(t, dir, map[string]string{"ADDR": p.Addr}, "dev")
	devToken(t, p)
	if credsAfter, _ := readCredentials(t, dir); !bytes.Equal(credsAfter, credsBefore) {
		t.Errorf("credentials changed across the restart:\n%s\nthen\n%s", credsBefore, credsAfter)
	}
	// The token printed by the first run still verifies: same JWT secret.
	if got := devFileIDs(t, p, tok); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after the restart files = %v, want %v", got, want)
	}
	for provider, f := range saved {
		if status, body := fetch(t, f["url"].(string)); status != 200 || !bytes.Equal(body, devPNG) {
			t.Errorf("after the restart GET %s (%s) = %d, %d bytes", f["url"], provider, status, len(body))
		}
		// The emulator still knows the asset, so the provider-first delete works.
		if r := call(t, "DELETE", p.URL+"/files/"+f["id"].(string), tok, "", nil); r.Status != 200 {
			t.Errorf("DELETE %s file after the restart: %d %s\n%s", provider, r.Status, r.Raw, p.Output())
		}
	}
	if got := devFileIDs(t, p, tok); len(got) != 0 {
		t.Errorf("files after deleting both = %v", got)
	}
}

// TestDevEnvironmentOverridesCredentials: credentials set in the
// environment win over the stored ones (tests and users can fix them), and
// DATABASE_URL moves the database.
func TestDevEnvironmentOverridesCredentials(t *testing.T) {
	dir := t.TempDir()
	env := devEnv()
	env["DATABASE_URL"] = "sqlite:elsewhere.db"
	p := startIn(t, dir, env, "dev")
	printed := devToken(t, p)
	_, stored := readCredentials(t, dir)
	if stored["AUTH_JWT_SECRET"] == jwtSecret || stored["UPLOADCARE_SECRET_KEY"] == devUCSecretKey {
		t.Errorf("the environment's secrets were written to .broker/credentials.json")
	}
	if _, err := os.Stat(filepath.Join(dir, "elsewhere.db")); err != nil {
		t.Errorf("DATABASE_URL=sqlite:elsewhere.db is not used: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".broker", "dev.db")); err == nil {
		t.Errorf(".broker/dev.db was created although DATABASE_URL is set")
	}

	// A token signed with the environment's secret is accepted, and so is
	// the printed one, so both come from AUTH_JWT_SECRET.
	tok := token(t, "dev-user")
	cld := call(t, "GET", p.URL+"/generate-signature?provider=cloudinary", tok, "", nil)
	if cld.Status != 200 || cld.Body["api_key"] != "123456789012345" || cld.Body["cloud_name"] != "democloud" {
		t.Errorf("Cloudinary signature is not for the environment's account: %d %s", cld.Status, cld.Raw)
	}
	uc := call(t, "GET", p.URL+"/generate-signature?provider=uploadcare", printed, "", nil)
	if uc.Status != 200 || uc.Body["public_key"] != devUCPublicKey {
		t.Errorf("Uploadcare signature is not for the environment's project: %d %s", uc.Status, uc.Raw)
	}
	// The emulator plays the same accounts: uploads signed with them go
	// through, and through the broker's listener a file is not held to the
	// API's JSON body limit.
	for _, provider := range []string{"cloudinary", "uploadcare"} {
		devUpload(t, p, tok, provider, "pixel.png", devPNG)
		devUpload(t, p, tok, provider, "notes.txt", bytes.Repeat([]byte("two megabytes of notes\n"), 100_000))
	}
	if got := devFileIDs(t, p, printed); len(got) != 4 {
		t.Errorf("files = %v, want the four uploads", got)
	}
}
