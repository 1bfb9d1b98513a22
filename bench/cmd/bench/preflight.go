package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"time"

	"github.com/brokerdev/broker/signer"
)

// preflight walks the real flow once before anything is measured: a
// signature from the broker, an upload with it through the emulator, and
// the emulator's answer saved through the broker. It also checks that the
// upload responses the generator makes up are signed exactly as the
// emulator signs them, so the measured saves are ones a real client could
// send. It returns the broker's signature answer, which the ceiling serves.
func preflight(ctx context.Context, brokerAddr, emulatorURL string) (signatureBody []byte, lines []string, err error) {
	client := &http.Client{Timeout: 15 * time.Second}
	tok, err := tokens(1)
	if err != nil {
		return nil, nil, err
	}
	auth := "Bearer " + tok[0]

	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+brokerAddr+"/generate-signature", nil)
	req.Header.Set("Authorization", auth)
	status, sigBody, err := do(client, req)
	if err != nil || status != 200 {
		return nil, nil, fmt.Errorf("GET /generate-signature: %d %v %s", status, err, snippet(sigBody))
	}
	var sig struct {
		Signature string            `json:"signature"`
		APIKey    string            `json:"api_key"`
		UploadURL string            `json:"upload_url"`
		Params    map[string]string `json:"params"`
	}
	if err := json.Unmarshal(sigBody, &sig); err != nil {
		return nil, nil, fmt.Errorf("signature answer: %w", err)
	}
	lines = append(lines, fmt.Sprintf("GET /generate-signature answered %d bytes; the ceiling serves these bytes", len(sigBody)))

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	for k, v := range sig.Params {
		_ = mw.WriteField(k, v)
	}
	_ = mw.WriteField("api_key", sig.APIKey)
	_ = mw.WriteField("signature", sig.Signature)
	fw, _ := mw.CreateFormFile("file", "cat.png")
	if err := png.Encode(fw, image.NewGray(image.Rect(0, 0, 4, 3))); err != nil {
		return nil, nil, err
	}
	_ = mw.Close()
	req, _ = http.NewRequestWithContext(ctx, "POST", sig.UploadURL, &form)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	status, upBody, err := do(client, req)
	if err != nil || status != 200 {
		return nil, nil, fmt.Errorf("upload to the emulator at %s: %d %v %s", sig.UploadURL, status, err, snippet(upBody))
	}
	var up struct {
		PublicID  string `json:"public_id"`
		Version   int64  `json:"version"`
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(upBody, &up); err != nil {
		return nil, nil, fmt.Errorf("emulator's upload answer: %w", err)
	}
	if want := signer.SignCloudinaryResponse(up.PublicID, up.Version, apiSecret, algorithm); want != up.Signature {
		return nil, nil, fmt.Errorf("the emulator signed its upload response %s, the generator would sign %s: the measured saves would not be real ones", up.Signature, want)
	}
	lines = append(lines, "uploaded "+up.PublicID+" through the emulator; its response signature is the one the generator computes")

	req, _ = http.NewRequestWithContext(ctx, "POST", "http://"+brokerAddr+"/save-metadata", bytes.NewReader(upBody))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	status, saveBody, err := do(client, req)
	if err != nil || status != 201 {
		return nil, nil, fmt.Errorf("POST /save-metadata of the emulator's answer: %d %v %s", status, err, snippet(saveBody))
	}
	lines = append(lines, "POST /save-metadata of the emulator's whole answer: 201")
	return sigBody, lines, nil
}

func do(c *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

func snippet(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
