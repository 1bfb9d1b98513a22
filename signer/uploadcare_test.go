package signer

import (
	"bytes"
	"crypto/md5" //nolint:gosec // checks the spec's body MD5s
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// Vectors from specs/uploadcare.md §1.8. There is no S7 in the spec.
func TestSignUploadcareUploadVectors(t *testing.T) {
	tests := []struct {
		name, secret string
		expire       int64
		want         string
	}{
		{"S1", "demosecretkey", 1698364860, "bf659caf5e081da589634770a84494fdb310d117be6f3f7b8e9842abf2997695"},
		{"S2", "demosecretkey", 1632470819, "50af003e37631a54ec45a10ff21a57e8d8b1b73432597592a877a8c5bfee4eec"},
		{"S3", "project_secret_key", 1454903856, "d39a461d41f607338abffee5f31da4d4e46535651c87346e76906bf75c064d47"},
		{"S4", "demosecretkey", 1893456000, "dfefd810fff122deef32a58e01fc143b84d5ab16757ccf8644f8e1d23711a627"},
		{"S5", "YOUR_SECRET_KEY", 4070908800, "f7c7e96a774fad4c1219c0d72ee9c4530415b4d0f4ae6edd3f764920e2b6d9b0"},
		{"S6", "c8c237984266090ff9b8", 1700000000, "814bde65a1db93639804dd4b98d68e5f795820104fcde74693cf145915545024"},
		{"S8 seconds given as ms", "demosecretkey", 1893456, "5b46374f28c52a7a4916f1fa69987bec9c5f36de0bd24403827266d33e939b20"},
		{"S9 ms sent by mistake", "demosecretkey", 1893456000000, "fcd7becd62588dab59bbe9b5aa20964529a7cee5644752e50725528c5ef812b5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SignUploadcareUpload(tt.secret, tt.expire)
			if got != tt.want {
				t.Fatalf("signature = %s, want %s", got, tt.want)
			}
			expire := strconv.FormatInt(tt.expire, 10)
			if !VerifyUploadcareUpload(tt.secret, expire, tt.want) {
				t.Error("the vector does not verify")
			}
			if !VerifyUploadcareUpload(tt.secret, expire, strings.ToUpper(tt.want)) {
				t.Error("upper-case hex does not verify")
			}
		})
	}
}

// The signed message is the expire string byte for byte (§7 pitfall 3), and
// the unit matters (S8/S9).
func TestVerifyUploadcareUploadRejects(t *testing.T) {
	const secret, sig = "demosecretkey", "dfefd810fff122deef32a58e01fc143b84d5ab16757ccf8644f8e1d23711a627" // S4
	for _, tc := range []struct{ name, secret, expire, sig string }{
		{"leading zero", secret, "01893456000", sig},
		{"trailing space", secret, "1893456000 ", sig},
		{"milliseconds", secret, "1893456000000", sig},
		{"other secret", "demosecretkey2", "1893456000", sig},
		{"empty secret", "", "1893456000", SignUploadcareUpload("", 1893456000)},
		{"truncated signature", secret, "1893456000", sig[:63]},
		{"empty signature", secret, "1893456000", ""},
		{"legacy MD5 scheme", secret, "1893456000", md5Hex(secret + "1893456000")},
	} {
		if VerifyUploadcareUpload(tc.secret, tc.expire, tc.sig) {
			t.Errorf("%s: verified", tc.name)
		}
	}
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s)) //nolint:gosec // legacy scheme under test
	return hex.EncodeToString(sum[:])
}

// Vectors from specs/uploadcare.md §4.4 (R1–R6) and the capture in §4.5.
func TestSignUploadcareRESTVectors(t *testing.T) {
	const (
		uuid     = "17be4678-dab7-4bc7-8753-28914a22960a"
		date2024 = "Mon, 01 Jan 2024 00:00:00 GMT"
		json     = "application/json"
	)
	tests := []struct {
		name, secret, method, body, date, uri, bodyMD5, want string
	}{
		{"R1", "demoprivatekey", "GET", "", "Mon, 05 Nov 2018 13:14:41 GMT", "/files/?limit=1&stored=true",
			"d41d8cd98f00b204e9800998ecf8427e", "3cbc4d2cf91f80c1ba162b926f8a975e8bec7995"},
		{"R2", "demosecretkey", "GET", "", date2024, "/files/" + uuid + "/",
			"d41d8cd98f00b204e9800998ecf8427e", "ac660a2262972109dc1daf0010509f00b97964f2"},
		{"R3", "demosecretkey", "PUT", "", date2024, "/files/" + uuid + "/storage/",
			"d41d8cd98f00b204e9800998ecf8427e", "749b3e088261802dc646e38af24149137a12c4d1"},
		{"R4", "demosecretkey", "DELETE", "", date2024, "/files/" + uuid + "/storage/",
			"d41d8cd98f00b204e9800998ecf8427e", "0579a72411032fceb4ea6104a752765d5284d333"},
		{"R5", "demosecretkey", "PUT", `["` + uuid + `"]`, date2024, "/files/storage/",
			"98ff5d4abd755a22984b9e0f9d7f7858", "7aac721150080a89eeb092d59f010800f19b3a96"},
		{"R6", "demosecretkey", "POST",
			`{"target_url":"https://example.com/hook","event":"file.uploaded","is_active":true,"signing_secret":"7kMVZivndx0ErgvhRKAr"}`,
			date2024, "/webhooks/", "3b2736747c4b9bb45bad7ef7c798946f", "ab77dee8eb6097ac9ebf9d359c202d31061e6bb6"},
		{"captured rest-client request", "demosecretkey", "GET", "", "Mon, 23 Nov 2026 03:01:17 GMT", "/files/" + uuid + "/?include=appdata",
			"d41d8cd98f00b204e9800998ecf8427e", "f7dbbe4e9be9297971813200ba11e57956383ce3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := md5Hex(tt.body); got != tt.bodyMD5 {
				t.Fatalf("body MD5 = %s, the spec says %s: the body is mistyped", got, tt.bodyMD5)
			}
			if got := SignUploadcareREST(tt.secret, tt.method, []byte(tt.body), json, tt.date, tt.uri); got != tt.want {
				t.Errorf("signature = %s, want %s", got, tt.want)
			}
			// Methods are upper case on the wire whatever the caller typed.
			if got := SignUploadcareREST(tt.secret, strings.ToLower(tt.method), []byte(tt.body), json, tt.date, tt.uri); got != tt.want {
				t.Errorf("lower-case method: signature = %s, want %s", got, tt.want)
			}
		})
	}
}

// Each of the five lines is part of the signature (pitfalls 6–8): changing
// any one of them must change it.
func TestSignUploadcareRESTCoversEveryLine(t *testing.T) {
	base := SignUploadcareREST("s", "GET", nil, "application/json", "Mon, 01 Jan 2024 00:00:00 GMT", "/files/?limit=1")
	variants := map[string]string{
		"secret":       SignUploadcareREST("t", "GET", nil, "application/json", "Mon, 01 Jan 2024 00:00:00 GMT", "/files/?limit=1"),
		"method":       SignUploadcareREST("s", "HEAD", nil, "application/json", "Mon, 01 Jan 2024 00:00:00 GMT", "/files/?limit=1"),
		"body":         SignUploadcareREST("s", "GET", []byte(" "), "application/json", "Mon, 01 Jan 2024 00:00:00 GMT", "/files/?limit=1"),
		"content type": SignUploadcareREST("s", "GET", nil, "", "Mon, 01 Jan 2024 00:00:00 GMT", "/files/?limit=1"),
		"date":         SignUploadcareREST("s", "GET", nil, "application/json", "Mon, 01 Jan 2024, 00:00:00 GMT", "/files/?limit=1"),
		"query":        SignUploadcareREST("s", "GET", nil, "application/json", "Mon, 01 Jan 2024 00:00:00 GMT", "/files/"),
	}
	for name, sig := range variants {
		if sig == base {
			t.Errorf("changing the %s does not change the signature", name)
		}
	}
	if SignUploadcareREST("s", "GET", nil, "", "", "") != SignUploadcareREST("s", "GET", []byte{}, "", "", "") {
		t.Error("nil and empty bodies sign differently")
	}
}

// w2Body is the W2 payload of specs/uploadcare.md §5.5, byte for byte.
const w2Body = `{"initiator":{"type":"api","detail":{"request_id":"972654bd-a2ad-485a-bd27-c86126c1ed8c","addon_name":null,"source_file_uuid":null}},"hook":{"id":1,"project_id":13,"project_pub_key":"demopublickey","target":"https://broker.example.com/uc/webhook","event":"file.uploaded","is_active":true,"version":"0.7","created_at":"2024-01-01T00:00:00.000000Z","updated_at":"2024-01-01T00:00:00.000000Z"},"data":{"uuid":"17be4678-dab7-4bc7-8753-28914a22960a","is_image":false,"is_ready":true,"mime_type":"text/plain","original_filename":"hello.txt","size":11,"datetime_uploaded":"2024-01-01T00:00:00.000000Z","datetime_stored":"2024-01-01T00:00:00.000000Z","datetime_removed":null,"original_file_url":"https://1s4oyld5dc.ucarecd.net/17be4678-dab7-4bc7-8753-28914a22960a/hello.txt","url":"https://api.uploadcare.com/files/17be4678-dab7-4bc7-8753-28914a22960a/","variations":null,"content_info":{"mime":{"mime":"text/plain","type":"text","subtype":"plain"}},"metadata":{"subsystem":"uploader"},"appdata":null},"file":"https://1s4oyld5dc.ucarecd.net/17be4678-dab7-4bc7-8753-28914a22960a/hello.txt"}`

// W1's body is not printed in the spec, so it is not tested here.
func TestUploadcareWebhookVectors(t *testing.T) {
	const w2Secret = "7kMVZivndx0ErgvhRKAr"
	if len(w2Body) != 1081 {
		t.Fatalf("W2 body has %d bytes, the spec says 1081", len(w2Body))
	}
	if sum := sha256.Sum256([]byte(w2Body)); hex.EncodeToString(sum[:]) != "860a1479aecbf44726c519dd8d9f6fc6606aa972a6822aa09de81e18eed16282" {
		t.Fatalf("W2 body SHA-256 = %x, not the spec's", sum)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, []byte(w2Body), "", "  "); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, secret string
		body         []byte
		want         string
	}{
		{"W2 exact bytes", w2Secret, []byte(w2Body), "v1=97435067041ec74e341b32063ecd97cf6286c1305a261b8fe23f6cbbe9341d0f"},
		{"W2 pretty-printed", w2Secret, pretty.Bytes(), "v1=29590c5a61876f0132313aa7c999ca7d6906aec4da0024703fac0fea2f5423ef"},
		{"W2 trailing newline", w2Secret, []byte(w2Body + "\n"), "v1=61775ca22e17e815305407f2412e0c30b76d442647a1ae0ddcc53d602fd46328"},
		{"W3", "s", []byte(`{"a":1}`), "v1=37beaf650f70b40ec9706929c2e9d835cbd63729988f48781e6383a147215f07"},
		{"W4 empty body", "12345X", nil, "v1=b5014cbbe94c781c58f8d86a4346219110e86ba2abdbc275fa8870c89ab94957"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SignUploadcareWebhook(tt.secret, tt.body); got != tt.want {
				t.Fatalf("header = %s, want %s", got, tt.want)
			}
			if !VerifyUploadcareWebhook(tt.secret, tt.body, tt.want) {
				t.Error("the vector does not verify")
			}
		})
	}
}

func TestVerifyUploadcareWebhookRejects(t *testing.T) {
	body := []byte(w2Body)
	const secret = "7kMVZivndx0ErgvhRKAr"
	good := SignUploadcareWebhook(secret, body)
	for _, tc := range []struct {
		name, secret string
		body         []byte
		header       string
	}{
		{"missing header", secret, body, ""},
		{"empty secret", "", body, SignUploadcareWebhook("", body)},
		{"other secret", secret[:len(secret)-1], body, good},
		{"re-serialized body", secret, []byte(w2Body + "\n"), good},
		{"no v1= prefix", secret, body, strings.TrimPrefix(good, "v1=")},
		{"upper-case hex", secret, body, "v1=" + strings.ToUpper(strings.TrimPrefix(good, "v1="))},
		{"extra text around it", secret, body, "v0=abc," + good},
		{"trailing space", secret, body, good + " "},
		{"v2 scheme", secret, body, "v2=" + strings.TrimPrefix(good, "v1=")},
	} {
		if VerifyUploadcareWebhook(tc.secret, tc.body, tc.header) {
			t.Errorf("%s: verified", tc.name)
		}
	}
}

// Vectors from specs/uploadcare.md §3.
func TestUploadcareCNAMEPrefixVectors(t *testing.T) {
	for pub, want := range map[string]string{
		"demopublickey":        "1s4oyld5dc",
		"c8c237984266090ff9b8": "127mbvwq3b",
		"3e6ba70c0670de3bef7a": "u51bthcx6t",
		"823a5ae6eb3afa5b353f": "ggiwfssv31",
		"caa9d29da887ee88ffe6": "12v67zybev",
	} {
		if got := UploadcareCNAMEPrefix(pub); got != want {
			t.Errorf("UploadcareCNAMEPrefix(%q) = %q, want %q", pub, got, want)
		}
	}
}

// Vectors from specs/uploadcare.md §6 (pyuploadcare's, and one token the
// real CDN accepted).
func TestUploadcareURLTokenVectors(t *testing.T) {
	const (
		key  = "73636b61519adede42191efe1e73f02a67c7b692e3765f90c250c230be095211"
		uuid = "52da3bfc-7cd8-4861-8b05-126fef7a6994"
	)
	tests := []struct {
		name, acl string
		exp       int64
		hmac      string
	}{
		{"bare uuid", "/" + uuid + "/", 1633997100, "81852547d9dbd9eefd24bee2cada6eab02244b9013533bc8511511923098df72"},
		{"wildcard", "/" + uuid + "/*", 1633997100, "b2c7526a29d0588b121aa78bc2b2c9399bfb6e1cad3d95397efed722fdbc5a78"},
		{"transformations", "/" + uuid + "/-/resize/640x/other/transformations/", 1633997100, "a3ae2b3e3adfcb5d41ca753598e19d17264ac87d2b0b828ccdac5136e63f2f1a"},
		{"accepted by the real CDN", "/1bd27101-6f40-460a-9358-d44c282e9d16/", 2015971200, "0e466b666443108e92a8b8255b95f7473073c8ea14aa074de5647d092c683e1f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := UploadcareURLToken(key, tt.acl, tt.exp)
			if err != nil {
				t.Fatal(err)
			}
			want := "exp=" + strconv.FormatInt(tt.exp, 10) + "~acl=" + tt.acl + "~hmac=" + tt.hmac
			if got != want {
				t.Errorf("token = %s\nwant    %s", got, want)
			}
		})
	}
	// Upper-case hex is still hex: the key bytes are the same.
	if up, _ := UploadcareURLToken(strings.ToUpper(key), "/"+uuid+"/", 1633997100); !strings.HasSuffix(up, tests[0].hmac) {
		t.Errorf("upper-case secret gives %s", up)
	}

	// URL mode differs only in the signed fields; the spec's vector pins the
	// shared HMAC with a lower-case percent-encoded path.
	decoded, _ := hex.DecodeString(key)
	if got := akamaiHMAC(decoded, "exp=1633997100~url=%2f"+uuid+"%2f"); got != "25c485fd7f85c19704013673c80d2a86df1b4241fb44cdfa7b7762cb27ef3f57" {
		t.Errorf("URL-mode hmac = %s", got)
	}
}

func TestUploadcareURLTokenEscapesTilde(t *testing.T) {
	const key = "00ff"
	got, err := UploadcareURLToken(key, "/52da3bfc-7cd8-4861-8b05-126fef7a6994~2/", 1)
	if err != nil {
		t.Fatal(err)
	}
	fields := "exp=1~acl=/52da3bfc-7cd8-4861-8b05-126fef7a6994%7e2/"
	if want := fields + "~hmac=" + akamaiHMAC([]byte{0x00, 0xff}, fields); got != want {
		t.Errorf("token = %s, want %s", got, want)
	}
	if n := strings.Count(got, "~"); n != 2 {
		t.Errorf("token %s has %d separators, want 2", got, n)
	}
}

func TestUploadcareURLTokenBadInput(t *testing.T) {
	const secretish = "73636b61519adede42191efe1e73f02a67c7b692e3765f90c250c230be09521z"
	for _, secret := range []string{"", "abc", "not hex", secretish} {
		tok, err := UploadcareURLToken(secret, "/x/", 1)
		if !errors.Is(err, ErrURLTokenSecret) || tok != "" {
			t.Errorf("secret %q: token %q, err %v; want ErrURLTokenSecret", secret, tok, err)
		}
		if err != nil && secret != "" && strings.Contains(err.Error(), secret) {
			t.Errorf("error %q reveals the secret", err)
		}
	}
	if _, err := UploadcareURLToken("00ff", "x/", 1); err == nil {
		t.Error("a relative ACL was accepted")
	}
}
