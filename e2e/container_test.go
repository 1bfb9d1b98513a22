package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/brokerdev/broker/internal/testdb"
)

// There is no Docker engine where the tests run, so this file tests what the
// container runs instead: the binary built with the Dockerfile's own `go
// build` line, started with the environment compose.yaml (and the
// emulator-profile .env of docs/deploy.md) gives it, on a database prepared
// by compose.yaml's init SQL, and checked with the Dockerfile's HEALTHCHECK.

// dockerStage is one stage of the Dockerfile, as far as the test needs it.
type dockerStage struct {
	from        string
	env         map[string]string
	args        map[string]string
	runs        []string
	user        string
	healthcheck []string // exec form after CMD
	entrypoint  []string
	cmd         []string
}

// parseDockerfile reads the instructions the test relies on; anything it
// does not know is ignored.
func parseDockerfile(t *testing.T) []*dockerStage {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var stages []*dockerStage
	var cur *dockerStage
	var line string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") || (text == "" && line == "") {
			continue
		}
		if strings.HasSuffix(text, "\\") {
			line += strings.TrimSuffix(text, "\\") + " "
			continue
		}
		line += text
		instr, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest = strings.TrimSpace(rest)
		line = ""
		if strings.ToUpper(instr) == "FROM" {
			cur = &dockerStage{from: strings.Fields(rest)[0], env: map[string]string{}, args: map[string]string{}}
			stages = append(stages, cur)
			continue
		}
		if cur == nil {
			continue
		}
		switch strings.ToUpper(instr) {
		case "ENV", "ARG":
			for _, kv := range dockerWords(t, rest) {
				k, v, _ := strings.Cut(kv, "=")
				if strings.ToUpper(instr) == "ENV" {
					cur.env[k] = v
				} else {
					cur.args[k] = v
				}
			}
		case "RUN":
			cur.runs = append(cur.runs, rest)
		case "USER":
			cur.user = rest
		case "HEALTHCHECK":
			_, form, ok := strings.Cut(rest, "CMD ")
			if !ok || json.Unmarshal([]byte(form), &cur.healthcheck) != nil {
				t.Fatalf("Dockerfile: HEALTHCHECK must use CMD in exec form: %s", rest)
			}
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				t.Fatalf("Dockerfile: %s must use the exec form: %s", instr, rest)
			}
			if strings.ToUpper(instr) == "CMD" {
				cur.cmd = v
			} else {
				cur.entrypoint = v
			}
		}
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: want a multi-stage build, found %d stage(s)", len(stages))
	}
	return stages
}

// dockerWords splits a command line the way sh would for the quoting the
// Dockerfile uses: spaces, double and single quotes.
func dockerWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

var dockerVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// imageVersion is the VERSION build argument of the test's image binary.
const imageVersion = "v0.0.0-container-test"

var (
	imageBinOnce sync.Once
	imageBin     string
	imageBinErr  error
)

// imageBinary is the binary the Dockerfile's build stage makes, built once
// for the package's tests beside the harness's own binary.
func imageBinary(t *testing.T, build *dockerStage) string {
	t.Helper()
	imageBinOnce.Do(func() {
		imageBin, imageBinErr = buildLikeDockerfile(t, build, imageVersion, filepath.Join(filepath.Dir(brokerBin), "image-broker"))
	})
	if imageBinErr != nil {
		t.Fatal(imageBinErr)
	}
	return imageBin
}

// buildLikeDockerfile runs the build stage's `go build` line, with the
// stage's ENV and the build argument VERSION, writing the binary to out.
func buildLikeDockerfile(t *testing.T, build *dockerStage, version, out string) (string, error) {
	t.Helper()
	var line string
	for _, r := range build.runs {
		if strings.Contains(r, "go build") {
			line = r
		}
	}
	if line == "" {
		return "", errors.New("Dockerfile: the build stage has no `go build` line")
	}
	vars := map[string]string{}
	for k, v := range build.args {
		vars[k] = v
	}
	vars["VERSION"] = version
	for k, v := range build.env {
		vars[k] = v
	}
	args := dockerWords(t, dockerVar.ReplaceAllStringFunc(line, func(m string) string {
		name := strings.Trim(m, "${}")
		return vars[name]
	}))
	if len(args) < 2 || args[0] != "go" || args[1] != "build" {
		return "", fmt.Errorf("Dockerfile: expected `RUN go build …`, got %q", line)
	}
	found := false
	for i := range args {
		if args[i] == "-o" && i+1 < len(args) {
			args[i+1], found = out, true
		}
	}
	if !found {
		return "", fmt.Errorf("Dockerfile: the go build line names no -o output: %q", line)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = repoRoot
	cmd.Env = os.Environ()
	for k, v := range build.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if outb, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, outb)
	}
	return out, nil
}

// composeFile is the part of compose.yaml the test reads.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Profiles    []string          `yaml:"profiles"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   any               `yaml:"depends_on"`
		NetworkMode string            `yaml:"network_mode"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		Configs []struct {
			Source string `yaml:"source"`
			Target string `yaml:"target"`
		} `yaml:"configs"`
	} `yaml:"services"`
	Configs map[string]struct {
		Content string `yaml:"content"`
	} `yaml:"configs"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// deployEmulatorEnv is the .env of docs/deploy.md's emulator profile: the
// dotenv block after the `env:emulator` marker.
func deployEmulatorEnv(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(raw), "<!-- env:emulator")
	if !ok {
		t.Fatal("docs/deploy.md has no env:emulator block")
	}
	_, after, _ = strings.Cut(after, "```dotenv\n")
	block, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("docs/deploy.md: the env:emulator block is not closed")
	}
	env := map[string]string{}
	for _, l := range strings.Split(block, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("docs/deploy.md: not KEY=VALUE: %q", l)
		}
		env[k] = v
	}
	return env
}

func ctFreePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// ctRun runs bin with exactly env in an empty directory, like
// runBroker but for another binary.
func ctRun(t *testing.T, bin string, env map[string]string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = environ(env)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return string(out), 0
}

// TestContainerImageBinary builds the binary as the Dockerfile does and
// checks what the image relies on: static, stripped, no build paths, the
// version stamped.
func TestContainerImageBinary(t *testing.T) {
	stages := parseDockerfile(t)
	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.from, "golang:") {
		t.Errorf("build stage FROM %s, want golang", build.from)
	}
	if build.env["CGO_ENABLED"] != "0" {
		t.Errorf("build stage: CGO_ENABLED=%q, want 0", build.env["CGO_ENABLED"])
	}
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Errorf("final stage FROM %s: want distroless/static or scratch", final.from)
	}
	if u := strings.Split(final.user, ":")[0]; u == "" || u == "0" || u == "root" {
		t.Errorf("final stage USER %q: want a non-root user", final.user)
	}

	bin := imageBinary(t, build)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (%v): it would not start on distroless/static", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -s did not strip it")
	}
	if f.Section(".debug_info") != nil || f.Section(".zdebug_info") != nil {
		t.Error("the binary has DWARF: -w did not drop it")
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(repoRoot)) {
		t.Errorf("the binary contains the checkout's path %s: -trimpath missing", repoRoot)
	}
	if out, code := ctRun(t, bin, nil, "version"); code != 0 || strings.TrimSpace(out) != "broker "+imageVersion {
		t.Errorf("broker version: %d %q", code, out)
	}
	t.Logf("image binary: %d bytes", len(raw))
}

// TestContainerComposeStack runs the image's binary the way compose.yaml
// runs the emulator profile: the database role of the init SQL (no
// superuser, no BYPASSRLS), the broker service's environment, the .env of
// docs/deploy.md, the Dockerfile's HEALTHCHECK.
func TestContainerComposeStack(t *testing.T) {
	stages := parseDockerfile(t)
	build, final := stages[0], stages[len(stages)-1]
	bin := imageBinary(t, build)
	compose := readCompose(t)
	pg, broker, emulator := compose.Services["postgres"], compose.Services["broker"], compose.Services["emulator"]

	// The shape the stack needs.
	if deps, _ := broker.DependsOn.(map[string]any); fmt.Sprint(deps["postgres"]) != "map[condition:service_healthy]" {
		t.Errorf("broker must wait for a healthy postgres: depends_on %v", broker.DependsOn)
	}
	if !strings.HasPrefix(pg.Image, "postgres:16") || len(pg.Healthcheck.Test) == 0 {
		t.Errorf("postgres: image %q, health check %v", pg.Image, pg.Healthcheck.Test)
	}
	if strings.Join(emulator.Profiles, ",") != "emulator" || strings.Join(emulator.Command, " ") != "emulate" {
		t.Errorf("emulator: profiles %v, command %v", emulator.Profiles, emulator.Command)
	}
	if broker.Build == nil {
		t.Error("broker: no build")
	}
	if len(final.healthcheck) == 0 || final.healthcheck[0] != final.entrypoint[0] {
		t.Fatalf("HEALTHCHECK %v must run the image's binary %v", final.healthcheck, final.entrypoint)
	}
	if strings.Join(final.cmd, " ") != "serve" {
		t.Errorf("CMD %v: the image should serve by default", final.cmd)
	}

	// The database as compose.yaml prepares it, under names of this test's
	// own: roles are shared by every database of the cluster.
	adminURL := testdb.PostgresURL(t)
	admin, err := url.Parse(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(admin.Path, "/")
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	role := "broker_ct_" + hex.EncodeToString(suffix[:])
	dbURL, err := url.Parse(broker.Environment["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	if dbURL.Hostname() != "postgres" || strings.TrimPrefix(dbURL.Path, "/") != pg.Environment["POSTGRES_DB"] {
		t.Errorf("broker DATABASE_URL %s must name the postgres service's database %s", dbURL.Redacted(), pg.Environment["POSTGRES_DB"])
	}
	composeDB := pg.Environment["POSTGRES_DB"]
	composeUser := dbURL.User.Username()
	composePass, _ := dbURL.User.Password()
	if len(pg.Configs) != 1 || !strings.HasPrefix(pg.Configs[0].Target, "/docker-entrypoint-initdb.d/") {
		t.Fatalf("postgres: want one init config under /docker-entrypoint-initdb.d/, got %v", pg.Configs)
	}
	initSQL := compose.Configs[pg.Configs[0].Source].Content
	rename := strings.NewReplacer(
		"DATABASE "+composeDB+" ", "DATABASE "+pgx.Identifier{dbName}.Sanitize()+" ",
		"ROLE "+composeUser+" ", "ROLE "+role+" ",
		"TO "+composeUser+";", "TO "+role+";",
		"PASSWORD '"+composePass+"'", "PASSWORD '"+role+"'",
	)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, rename.Replace(initSQL)); err != nil {
		t.Fatalf("compose.yaml's init SQL: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(ctx)
		ident := pgx.Identifier{role}.Sanitize()
		if _, err := c.Exec(ctx, "REASSIGN OWNED BY "+ident+" TO CURRENT_USER; DROP OWNED BY "+ident+"; DROP ROLE "+ident); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	brokerDB := *admin
	brokerDB.User = url.UserPassword(role, role)
	brokerDB.RawQuery = dbURL.RawQuery

	// The environment of each container: the image's ENV, then .env
	// (env_file), then the service's environment, which wins. Only the
	// addresses differ: the test's ports instead of 3000 and 3100.
	dotenv := deployEmulatorEnv(t)
	containerEnv := func(service map[string]string) map[string]string {
		env := map[string]string{}
		for _, m := range []map[string]string{final.env, dotenv, service} {
			for k, v := range m {
				env[k] = v
			}
		}
		return env
	}
	brokerPort, emuPort := ctFreePort(t), ctFreePort(t)
	brokerURL, emuAddr := "http://127.0.0.1:"+brokerPort, "127.0.0.1:"+emuPort
	ports := strings.NewReplacer("localhost:3000", "127.0.0.1:"+brokerPort, "localhost:3100", emuAddr, ":3000", ":"+brokerPort, ":3100", ":"+emuPort)
	localize := func(env map[string]string) map[string]string {
		for k, v := range env {
			env[k] = ports.Replace(v)
		}
		return env
	}
	emuEnv := containerEnv(emulator.Environment)
	if emuEnv["ADDR"] != ":3100" {
		t.Errorf("emulator ADDR %q, want :3100 (the URLs of docs/deploy.md)", emuEnv["ADDR"])
	}
	start(t, localize(emuEnv), "emulate")

	brokerEnv := containerEnv(broker.Environment)
	if brokerEnv["ADDR"] != ":3000" {
		t.Errorf("broker ADDR %q, want :3000 on every interface", brokerEnv["ADDR"])
	}
	brokerEnv = localize(brokerEnv)
	brokerEnv["DATABASE_URL"] = brokerDB.String()

	health := append([]string{}, final.healthcheck[1:]...)
	if out, code := ctRun(t, bin, brokerEnv, health...); code != 1 {
		t.Errorf("HEALTHCHECK with no broker running: exit %d, want 1 (unhealthy): %s", code, out)
	}

	cmd := exec.Command(bin, final.cmd...)
	cmd.Dir = t.TempDir()
	cmd.Env = environ(brokerEnv)
	var logs ctSyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		if err := <-exited; err != nil {
			t.Errorf("broker serve did not exit cleanly on SIGINT: %v\n%s", err, logs.String())
		}
	})
	// The container is healthy once the health check says so; until then
	// Docker waits (its start period), as this loop does, until the broker
	// exits or a minute has passed.
	deadline := time.Now().Add(time.Minute)
	for {
		out, code := ctRun(t, bin, brokerEnv, health...)
		if code == 0 {
			if !strings.Contains(out, "healthy: GET http://127.0.0.1:"+brokerPort+"/healthz") {
				t.Errorf("healthcheck output: %s", out)
			}
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("broker serve exited (%v) before it was healthy:\n%s", err, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker serve not healthy after a minute: %s\n%s", out, logs.String())
		}
	}
	if out, code := ctRun(t, bin, brokerEnv, append(health, "--path", "/readyz")...); code != 0 {
		t.Errorf("healthcheck --path /readyz: exit %d: %s", code, out)
	}

	// The broker's role is bound by row-level security, and the migrations
	// ran as that role.
	var bypass, forced bool
	var owner string
	if err := conn.QueryRow(ctx, `SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = $1`, role).Scan(&bypass); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_get_userbyid(relowner), relforcerowsecurity FROM pg_class WHERE oid = 'files'::regclass`).Scan(&owner, &forced); err != nil {
		t.Fatal(err)
	}
	if bypass || owner != role || !forced {
		t.Errorf("role %s: bypasses RLS %v; files owned by %s, RLS forced %v", role, bypass, owner, forced)
	}

	// Both providers work through the emulator with the documented .env:
	// sign, upload straight to the emulator, save.
	tokOut, code := ctRun(t, bin, brokerEnv, "token", "--sub", "alice")
	if code != 0 {
		t.Fatalf("broker token: %d %s", code, tokOut)
	}
	tok := strings.TrimSpace(tokOut)
	for _, q := range []string{"provider=cloudinary&resource_type=image", "provider=uploadcare"} {
		sig := ctJSON(t, "GET", brokerURL+"/generate-signature?"+q, tok, "")
		if sig.status != 200 {
			t.Fatalf("generate-signature?%s: %d %v", q, sig.status, sig.body)
		}
		up := oaUploadToProvider(t, sig.body)
		var evidence string
		if sig.body["provider"] == "cloudinary" {
			evidence = oaMustJSON(t, up)
		} else {
			evidence = fmt.Sprintf(`{"uuid":%q}`, up["file"])
		}
		// 200 is right too: with PUBLIC_URL set, the emulator's
		// notification may have recorded the file first.
		saved := ctJSON(t, "POST", brokerURL+"/save-metadata", tok, evidence)
		if saved.status != 201 && saved.status != 200 {
			t.Fatalf("save (%s): %d %v", q, saved.status, saved.body)
		}
		file, _ := saved.body["file"].(map[string]any)
		fileURL, _ := file["url"].(string)
		if !strings.HasPrefix(fileURL, "http://"+emuAddr+"/") {
			t.Errorf("file URL %q is not the emulator's", fileURL)
		}
		resp, err := http.Get(fileURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", fileURL, resp.StatusCode)
		}
	}
	if t.Failed() {
		t.Logf("broker log:\n%s", logs.String())
	}
}

// ctSyncBuffer collects a process's output while the test reads it.
type ctSyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *ctSyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *ctSyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type ctAnswer struct {
	status int
	body   map[string]any
}

func ctJSON(t *testing.T, method, target, tok, body string) ctAnswer {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a ctAnswer
	a.status = resp.StatusCode
	_ = json.NewDecoder(resp.Body).Decode(&a.body)
	return a
}
