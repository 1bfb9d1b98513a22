package httpapi

import (
	"strings"
	"testing"

	"github.com/brokerdev/broker/apierror"
)

// strictUnmarshal takes exactly one JSON value: json.Unmarshal on the fast
// road, the Decoder's explanation on refusal.
func TestStrictUnmarshalOneValue(t *testing.T) {
	var ok struct{ A int }
	if err := strictUnmarshal([]byte(" {\"a\":1}\n"), &ok); err != nil || ok.A != 1 {
		t.Fatalf("a valid object: %v, %+v", err, ok)
	}
	for body, msg := range map[string]string{
		`{"a":1}{"b":2}`: "data after the JSON value",
		`{"a":1}]`:       "data after the JSON value",
		`{"a":1}}`:       "data after the JSON value",
		`{"a":`:          "ends too early",
		`{"a":x}`:        "malformed JSON at byte",
		`{"a":"x"}`:      "field A must be a number",
	} {
		var v struct{ A int }
		err := strictUnmarshal([]byte(body), &v)
		e, isAPI := apierror.As(err)
		if !isAPI || e.Code != apierror.CodeInvalidRequest || !strings.Contains(e.Message, msg) {
			t.Errorf("%s: got %v, want invalid_request with %q", body, err, msg)
		}
	}
}
