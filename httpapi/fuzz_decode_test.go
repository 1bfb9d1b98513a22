package httpapi

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/metadata"
)

// fuzzBodyLimit is small so that the fuzzer reaches the size limit too.
const fuzzBodyLimit = 4 << 10

// decodeSave runs the decoding half of POST /save-metadata, in the
// handler's order, up to the point where the use case is called.
func decodeSave(body []byte, contentType string) (provider string, ev metadata.CloudinaryEvidence, uuid string, err error) {
	req := httptest.NewRequest(http.MethodPost, "/save-metadata", bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set(echo.HeaderContentType, contentType)
	}
	c := echo.New().NewContext(req, httptest.NewRecorder())
	fields, raw, err := readJSONObject(c, fuzzBodyLimit)
	if err != nil {
		return "", ev, "", err
	}
	if provider, err = providerOfEvidence(fields); err != nil {
		return "", ev, "", err
	}
	switch provider {
	case metadata.ProviderCloudinary:
		err = strictUnmarshal(raw, &ev)
	case metadata.ProviderUploadcare:
		uuid, err = uploadcareUUID(fields)
	}
	return provider, ev, uuid, err
}

// FuzzSaveBodyDecoding: whatever the body and Content-Type, decoding never
// panics and refuses only with invalid_request (400) or payload_too_large
// (413), never anything a 500 would come from. It refuses exactly what it
// must: a body that is a JSON object within the limit, sent as JSON, is
// never refused as malformed, and what it accepts is one JSON object.
// Seeds live in testdata/fuzz/FuzzSaveBodyDecoding.
func FuzzSaveBodyDecoding(f *testing.F) {
	for _, seed := range []string{
		`{"public_id":"uploads/alice/x","version":1,"signature":"ab","secure_url":"https://x","resource_type":"image"}`,
		`{"public_id":"uploads/alice/x","secure_url":"https://x","resource_type":"image"}`,
		`{"provider":"uploadcare","uuid":"0190b1c2-0000-4000-8000-000000000000"}`,
		`{"file_id":"x"}`, `{"file":null,"uuid":""}`, `{"provider":1}`, `{"public_id":42}`,
		`{"version":"1","public_id":"a"}`, `{"version":1e400,"public_id":"a"}`, `{"bytes":-1,"public_id":"a"}`,
		`null`, `[]`, `"x"`, ``, ` `, `{`, `{"a":1}{"b":2}`, "\xef\xbb\xbf{}", `{"public_id":"\ud800"}`,
		`{"public_id":"a","public_id":{"x":1}}`, strings.Repeat("[", 300),
	} {
		f.Add([]byte(seed), "application/json")
	}
	f.Add([]byte(`{"public_id":"a"}`), "text/plain")
	f.Add([]byte(`{"public_id":"a"}`), "application/problem+json; charset=utf-8")
	f.Add([]byte(`{"public_id":"a"}`), ";;;")
	f.Add([]byte(`{"public_id":"a"}`), "")

	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		provider, ev, uuid, err := decodeSave(body, contentType)
		if err != nil {
			e, ok := apierror.As(err)
			if !ok {
				t.Fatalf("error %v (%T) is not an *apierror.Error: it would be a 500", err, err)
			}
			switch e.Code {
			case apierror.CodeInvalidRequest, apierror.CodePayloadTooLarge:
			default:
				t.Fatalf("refused with %s (%d), want invalid_request or payload_too_large: %v", e.Code, e.Status(), err)
			}
			if e.Code == apierror.CodePayloadTooLarge && len(body) <= fuzzBodyLimit {
				t.Fatalf("a %d-byte body was refused as too large", len(body))
			}
			// A JSON object within the limit, sent as JSON, may be refused
			// for its content, never as malformed.
			if jsonType(contentType) && len(body) <= fuzzBodyLimit && isJSONObject(body) &&
				(strings.Contains(e.Message, "malformed") || strings.Contains(e.Message, "must be a JSON object") || strings.Contains(e.Message, "not valid JSON")) {
				t.Fatalf("a valid JSON object was refused as malformed: %v", err)
			}
			return
		}
		if !isJSONObject(body) {
			t.Fatalf("accepted a body that is not one JSON object: %q", body)
		}
		if len(body) > fuzzBodyLimit {
			t.Fatalf("accepted %d bytes over the %d-byte limit", len(body), fuzzBodyLimit)
		}
		switch provider {
		case metadata.ProviderCloudinary:
			if uuid != "" {
				t.Fatalf("a Cloudinary body produced an Uploadcare UUID %q", uuid)
			}
		case metadata.ProviderUploadcare:
			if uuid == "" {
				t.Fatal("an Uploadcare body was accepted without a UUID")
			}
			if ev != (metadata.CloudinaryEvidence{}) {
				t.Fatalf("an Uploadcare body filled Cloudinary evidence: %+v", ev)
			}
		default:
			t.Fatalf("accepted with provider %q", provider)
		}
	})
}

// jsonType mirrors the contract: no Content-Type, application/json or a
// +json type.
func jsonType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// isJSONObject reports whether body is exactly one JSON object, by the
// standard library's reading.
func isJSONObject(body []byte) bool {
	if !json.Valid(body) {
		return false
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(body, &m) == nil && m != nil
}
