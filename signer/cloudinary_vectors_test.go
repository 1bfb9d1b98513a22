package signer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// cloudinaryVectors mirrors shared/specs/cloudinary-vectors.json, the values
// computed with the official Node SDK. Upload params stay raw JSON because
// their types (number, boolean, array, null) are part of what is tested.
type cloudinaryVectors struct {
	Upload []struct {
		ID               string                     `json:"id"`
		Params           map[string]json.RawMessage `json:"params"`
		Secret           string                     `json:"secret"`
		Algorithm        Algorithm                  `json:"algorithm"`
		SignatureVersion int                        `json:"signature_version"`
		StringToSign     string                     `json:"string_to_sign"`
		Signature        string                     `json:"signature"`
	} `json:"upload"`
	Response []struct {
		ID        string    `json:"id"`
		PublicID  string    `json:"public_id"`
		Version   int64     `json:"version"`
		Secret    string    `json:"secret"`
		Algorithm Algorithm `json:"algorithm"`
		Signature string    `json:"signature"`
	} `json:"response"`
	Notification []struct {
		ID        string      `json:"id"`
		Body      string      `json:"body"`
		Timestamp json.Number `json:"timestamp"`
		Secret    string      `json:"secret"`
		Algorithm Algorithm   `json:"algorithm"`
		Signature string      `json:"signature"`
	} `json:"notification"`
	URL []struct {
		ID           string    `json:"id"`
		Secret       string    `json:"secret"`
		SignedString string    `json:"signed_string"`
		Algorithm    Algorithm `json:"algorithm"`
		Length       int       `json:"length"`
		URL          string    `json:"url"`
	} `json:"url"`
}

// vectorsFile is the committed copy of the spec's vectors, so the test needs
// nothing outside the checkout. Where the shared specs folder sits above the
// checkout (the team's machines), the copy must still equal it: an updated
// spec then fails the test until the copy is refreshed.
const vectorsFile = "testdata/cloudinary-vectors.json"

// sharedSpecsFile finds a file of shared/specs by walking up from the
// working directory, or returns "" when there is none.
func sharedSpecsFile(name string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		candidate := filepath.Join(dir, "shared", "specs", name)
		if _, err := os.Stat(candidate); err == nil {
			return candidate
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func TestVectorsCopyMatchesSpec(t *testing.T) {
	spec := sharedSpecsFile("cloudinary-vectors.json")
	if spec == "" {
		t.Log("no shared/specs above the checkout; the committed copy stands alone")
		return
	}
	want, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s: copy the spec's vectors again", vectorsFile, spec)
	}
}

func loadCloudinaryVectors(t *testing.T) cloudinaryVectors {
	t.Helper()
	path := vectorsFile
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var v cloudinaryVectors
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if len(v.Upload) == 0 || len(v.Response) == 0 || len(v.Notification) == 0 || len(v.URL) == 0 {
		t.Fatalf("%s: a vector group is empty (upload %d, response %d, notification %d, url %d)",
			path, len(v.Upload), len(v.Response), len(v.Notification), len(v.URL))
	}
	return v
}

// formValue renders a JSON parameter value as the form field the SDK would
// POST: numbers as their decimal text, booleans as true/false, arrays joined
// with ",". ok is false for null, which the SDK leaves out.
func formValue(raw json.RawMessage) (value string, ok bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", false, err
	}
	return scalarText(v)
}

func scalarText(v any) (string, bool, error) {
	switch x := v.(type) {
	case nil:
		return "", false, nil
	case string:
		return x, true, nil
	case json.Number:
		return x.String(), true, nil
	case bool:
		return strconv.FormatBool(x), true, nil
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok, err := scalarText(e)
			if err != nil {
				return "", false, err
			}
			if ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ","), true, nil
	default:
		return "", false, fmt.Errorf("unsupported parameter value %T", v)
	}
}

func TestCloudinaryVectors(t *testing.T) {
	v := loadCloudinaryVectors(t)

	for _, u := range v.Upload {
		t.Run("upload/"+u.ID, func(t *testing.T) {
			params := make(map[string]string, len(u.Params))
			for k, raw := range u.Params {
				s, ok, err := formValue(raw)
				if err != nil {
					t.Fatalf("param %s: %v", k, err)
				}
				if ok {
					params[k] = s
				}
			}
			if got := CloudinaryStringToSign(params, u.SignatureVersion); got != u.StringToSign {
				t.Errorf("string to sign\n got %q\nwant %q", got, u.StringToSign)
			}
			if got := SignCloudinary(params, u.Secret, u.Algorithm, u.SignatureVersion); got != u.Signature {
				t.Errorf("signature = %s, want %s", got, u.Signature)
			}
			// The server side must accept what the SDK produced, and say
			// which version it was (v1 and v2 coincide without "&").
			got := VerifyCloudinaryUpload(params, u.Secret, u.Signature)
			want := u.SignatureVersion
			if CloudinaryStringToSign(params, 1) == CloudinaryStringToSign(params, 2) {
				want = 2
			}
			if got != want {
				t.Errorf("VerifyCloudinaryUpload = %d, want %d", got, want)
			}
		})
	}

	for _, r := range v.Response {
		t.Run("response/"+r.ID, func(t *testing.T) {
			if got := SignCloudinaryResponse(r.PublicID, r.Version, r.Secret, r.Algorithm); got != r.Signature {
				t.Errorf("signature = %s, want %s", got, r.Signature)
			}
			if !VerifyCloudinaryResponse(r.PublicID, r.Version, r.Secret, r.Signature, r.Algorithm) {
				t.Error("VerifyCloudinaryResponse rejected the SDK's signature")
			}
			if VerifyCloudinaryResponse(r.PublicID, r.Version+1, r.Secret, r.Signature, r.Algorithm) {
				t.Error("VerifyCloudinaryResponse accepted another version")
			}
		})
	}

	for _, n := range v.Notification {
		t.Run("notification/"+n.ID, func(t *testing.T) {
			ts := n.Timestamp.String()
			if got := SignCloudinaryNotification([]byte(n.Body), ts, n.Secret, n.Algorithm); got != n.Signature {
				t.Errorf("signature = %s, want %s", got, n.Signature)
			}
			if !VerifyCloudinaryNotification([]byte(n.Body), ts, n.Signature, n.Secret, n.Algorithm) {
				t.Error("VerifyCloudinaryNotification rejected the SDK's signature")
			}
			if VerifyCloudinaryNotification([]byte(n.Body+" "), ts, n.Signature, n.Secret, n.Algorithm) {
				t.Error("VerifyCloudinaryNotification accepted a changed body")
			}
		})
	}

	for _, s := range v.URL {
		t.Run("url/"+s.ID, func(t *testing.T) {
			want, err := urlSignatureComponent(s.URL)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) != s.Length {
				t.Fatalf("vector's signature %q has %d characters, vector says %d", want, len(want), s.Length)
			}
			if got := CloudinaryURLSignature(s.SignedString, s.Secret, s.Algorithm, s.Length); got != want {
				t.Errorf("signature = %q, want %q", got, want)
			}
		})
	}
}

// urlSignatureComponent extracts the inner value of the "s--…--" path
// segment. It cannot split on "--": the base64url alphabet contains "-", so
// a value may itself start or end with dashes ("s----SjmNDA--").
func urlSignatureComponent(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) > len("s----") && strings.HasPrefix(seg, "s--") && strings.HasSuffix(seg, "--") {
			return seg[len("s--") : len(seg)-len("--")], nil
		}
	}
	return "", fmt.Errorf("no s--…-- segment in %s", rawURL)
}
