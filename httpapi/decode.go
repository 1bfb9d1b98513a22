package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/apierror"
)

// readJSONObject reads a JSON object body of at most limit bytes and returns
// its members undecoded, so the caller can pick a shape by what is present.
func readJSONObject(c echo.Context, limit int64) (map[string]json.RawMessage, []byte, error) {
	if ct := c.Request().Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, nil, apierror.InvalidRequest("Content-Type must be application/json")
		}
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, limit+1))
	if err != nil {
		return nil, nil, apierror.Wrap(apierror.CodeInvalidRequest, err, "could not read the request body")
	}
	if int64(len(body)) > limit {
		return nil, nil, apierror.New(apierror.CodePayloadTooLarge, "request body is larger than %d bytes", limit)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, apierror.InvalidRequest("request body is empty; send a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := strictUnmarshal(body, &fields); err != nil {
		return nil, nil, err
	}
	if fields == nil {
		return nil, nil, apierror.InvalidRequest("request body must be a JSON object")
	}
	return fields, body, nil
}

// strictUnmarshal decodes exactly one JSON value into dst and explains
// failures in terms of the request: where the syntax broke, which field has
// the wrong type.
func strictUnmarshal(data []byte, dst any) error {
	// json.Unmarshal takes exactly one value and nothing but white space
	// after it, and costs a third less than a Decoder: it is the road of
	// every valid body. A refusal is explained by the Decoder, which says
	// where and why in the request's terms.
	if json.Unmarshal(data, dst) == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	return apierror.InvalidRequest("request body has data after the JSON value")
}

func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return apierror.InvalidRequest("malformed JSON at byte %d", syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return apierror.InvalidRequest("JSON body ends too early")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return apierror.InvalidRequest("request body must be a JSON object")
		}
		return apierror.InvalidRequest("field %s must be %s", typeErr.Field, describeType(typeErr.Type.Kind().String()))
	default:
		return apierror.Wrap(apierror.CodeInvalidRequest, err, "request body is not valid JSON")
	}
}

func describeType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "ptr":
		return "of another type"
	default:
		return fmt.Sprintf("a %s", kind)
	}
}

// stringField returns a member that must be a string, or "" when absent or null.
func stringField(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", apierror.InvalidRequest("field %s must be a string", name)
	}
	return s, nil
}
