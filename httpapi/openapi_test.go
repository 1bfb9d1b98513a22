package httpapi_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/config"
	"github.com/brokerdev/broker/docs"
	"github.com/brokerdev/broker/httpapi"
	"github.com/brokerdev/broker/metadata"
)

// These tests keep docs/openapi.yaml and the code in step without a
// database; e2e/openapi_test.go validates real answers against it.

func loadDoc(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(docs.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	return doc
}

func bareServer(t *testing.T) *echo.Echo {
	t.Helper()
	verifier, err := auth.New(context.Background(), config.Auth{JWTSecret: testSecret, UserClaim: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	return httpapi.New(httpapi.Deps{Service: &metadata.Service{}, Auth: verifier, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// TestOpenAPIListsEveryRoute: every route the broker registers is an
// operation of the document, and every operation is a route (the demo page
// excepted: only `broker dev` mounts it).
func TestOpenAPIListsEveryRoute(t *testing.T) {
	doc := loadDoc(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[method+" "+path] = true
			// The request id middleware is outermost: every answer has one.
			for status, ref := range op.Responses.Map() {
				if ref.Value.Headers["X-Request-ID"] == nil {
					t.Errorf("%s %s %s: X-Request-ID is not documented", method, path, status)
				}
			}
		}
	}
	param := regexp.MustCompile(`:([A-Za-z_]+)`)
	registered := map[string]bool{}
	for _, r := range bareServer(t).Routes() {
		registered[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	for k := range registered {
		if !documented[k] {
			t.Errorf("route %s is not in docs/openapi.yaml", k)
		}
	}
	for k := range documented {
		if !registered[k] && k != "GET /" {
			t.Errorf("docs/openapi.yaml describes %s, which the broker does not serve", k)
		}
	}
}

// TestOpenAPIErrorCodes: the Error schema's code enum is exactly the codes
// of package apierror, and every documented error answer pairs each code
// with the status apierror gives it.
func TestOpenAPIErrorCodes(t *testing.T) {
	doc := loadDoc(t)
	var inDoc []string
	for _, v := range doc.Components.Schemas["Error"].Value.Properties["code"].Value.Enum {
		inDoc = append(inDoc, v.(string))
	}
	inCode := apierrorCodes(t)
	sort.Strings(inDoc)
	if strings.Join(inDoc, ",") != strings.Join(inCode, ",") {
		t.Errorf("Error.code enum %v, apierror codes %v", inDoc, inCode)
	}

	checked := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, ref := range op.Responses.Map() {
				n, err := strconv.Atoi(status)
				if err != nil || n < 400 {
					continue
				}
				mt := ref.Value.Content.Get("application/json")
				if mt == nil || mt.Schema == nil {
					t.Errorf("%s %s %s: an error answer without the JSON Error body", method, path, status)
					continue
				}
				codes := narrowedCodes(mt.Schema.Value)
				if len(codes) == 0 {
					t.Errorf("%s %s %s: the answer does not say which codes it carries", method, path, status)
				}
				for _, code := range codes {
					if got := apierror.New(code, "x").Status(); got != n {
						t.Errorf("%s %s: documented as %d, apierror answers %s with %d", method, path, n, code, got)
					}
					checked++
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no error answer was checked")
	}
}

// narrowedCodes is the code enum an error answer's allOf adds to Error.
func narrowedCodes(s *openapi3.Schema) []string {
	var out []string
	for _, part := range s.AllOf {
		if p := part.Value.Properties["code"]; p != nil && part.Ref == "" {
			for _, v := range p.Value.Enum {
				out = append(out, v.(string))
			}
		}
	}
	return out
}

// apierrorCodes reads the Code* constants of package apierror from its
// source, so a code added there and not here fails the test.
func apierrorCodes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../apierror/apierror.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Code") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					codes = append(codes, v)
				}
			}
		}
	}
	if len(codes) == 0 {
		t.Fatal("no Code constants found in apierror")
	}
	sort.Strings(codes)
	return codes
}

// TestOpenAPIServed: GET /openapi.yaml answers the embedded document as
// YAML, without a token.
func TestOpenAPIServed(t *testing.T) {
	srv := httptest.NewServer(bareServer(t))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/yaml") || string(body) != string(docs.OpenAPI) {
		t.Errorf("GET /openapi.yaml: %d %q, %d bytes (want %d)", resp.StatusCode, resp.Header.Get("Content-Type"), len(body), len(docs.OpenAPI))
	}
}
