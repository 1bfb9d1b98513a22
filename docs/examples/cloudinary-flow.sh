#!/usr/bin/env bash
# The whole Cloudinary flow with curl and jq, against a running broker:
#   signature → direct upload with exactly the returned fields → save (201,
#   then 200) → list → fetch from the delivery URL → delete (gone at the
#   provider too); then the refusals: a forged response signature, another
#   user's public ID, a tampered upload field and a three-field body for an
#   asset that does not exist, each refused with the contract's code and
#   leaving no row.
#
# Needs: BROKER_URL (e.g. http://127.0.0.1:3000), BROKER_TOKEN (a JWT for one
# user) and OTHER_TOKEN (a JWT for another user), e.g. from `broker token`.
# Works against `broker serve` + `broker emulate`, or `broker dev`.
set -euo pipefail

: "${BROKER_URL:?set BROKER_URL}" "${BROKER_TOKEN:?set BROKER_TOKEN}" "${OTHER_TOKEN:?set OTHER_TOKEN}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

# api METHOD PATH [TOKEN] [JSON] — prints the body, leaves the status in $work/status.
api() {
  local method=$1 path=$2 token=${3:-$BROKER_TOKEN} data=${4:-}
  local args=(-sS -X "$method" -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $token")
  [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
  curl "${args[@]}" "$BROKER_URL$path" >"$work/status"
  cat "$work/body"
}
expect() { # expect STATUS [CODE]
  local got; got=$(cat "$work/status")
  [ "$got" = "$1" ] || fail "expected HTTP $1, got $got: $(cat "$work/body")"
  if [ -n "${2:-}" ]; then
    [ "$(jq -r .code "$work/body")" = "$2" ] || fail "expected code $2: $(cat "$work/body")"
  fi
}
count_files() { api GET "/files?limit=100" >/dev/null; expect 200; jq '.files | length' "$work/body"; }

# upload FILE SIGNATURE_JSON [EXTRA_CURL_ARGS…] — posts exactly the signed fields.
upload() {
  local file=$1 sig=$2; shift 2
  local form=(-F "file=@$file" -F "api_key=$(jq -r .api_key <<<"$sig")" -F "signature=$(jq -r .signature <<<"$sig")")
  while IFS= read -r kv; do form+=(-F "$kv"); done < <(jq -r '.params | to_entries[] | "\(.key)=\(.value)"' <<<"$sig")
  curl -sS -o "$work/upload" -w '%{http_code}' "${form[@]}" "$@" "$(jq -r .upload_url <<<"$sig")"
}

# A 1×1 PNG.
printf '\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82' >"$work/pixel.png"

before=$(count_files)

step "get a signature"
sig=$(api GET "/generate-signature?provider=cloudinary&resource_type=image"); expect 200
[ "$(jq -r .provider <<<"$sig")" = cloudinary ] || fail "provider: $sig"

step "upload straight to the provider with exactly the returned fields"
status=$(upload "$work/pixel.png" "$sig")
[ "$status" = 200 ] || fail "upload answered $status: $(cat "$work/upload")"
result=$(cat "$work/upload")
public_id=$(jq -r .public_id <<<"$result")
[ "$public_id" = "$(jq -r .params.public_id <<<"$sig")" ] || fail "public_id differs from the signed one"

step "save the provider's answer: 201, then 200 with the same file"
file=$(api POST /save-metadata "$BROKER_TOKEN" "$result"); expect 201
id=$(jq -r .file.id <<<"$file")
[ "$(jq -r .file.width <<<"$file")" = 1 ] || fail "width not recorded: $file"
again=$(api POST /save-metadata "$BROKER_TOKEN" "$result"); expect 200
[ "$(jq -r .file.id <<<"$again")" = "$id" ] || fail "second save made another record"

step "list it"
api GET "/files?provider=cloudinary&limit=5" >/dev/null; expect 200
jq -e --arg id "$id" '.files[] | select(.id == $id)' "$work/body" >/dev/null || fail "not listed"

step "fetch it from the delivery URL"
url=$(jq -r .file.url <<<"$file")
curl -sSf -o "$work/fetched" "$url" || fail "delivery URL $url did not answer"
cmp -s "$work/pixel.png" "$work/fetched" || fail "delivered bytes differ"

step "the three-field body of the seed guide works for a real asset (Admin API proof)"
sig2=$(api GET "/generate-signature?resource_type=image"); expect 200
[ "$(upload "$work/pixel.png" "$sig2")" = 200 ] || fail "second upload: $(cat "$work/upload")"
three=$(jq '{public_id, secure_url, resource_type}' "$work/upload")
file2=$(api POST /save-metadata "$BROKER_TOKEN" "$three"); expect 201
id2=$(jq -r .file.id <<<"$file2")

step "delete: gone at the broker and at the provider"
api DELETE "/files/$id" >/dev/null; expect 200
api GET "/files/$id" >/dev/null; expect 404 not_found
code=$(curl -s -o /dev/null -w '%{http_code}' "$url")
[ "$code" = 404 ] || fail "provider still serves the deleted asset ($code)"
api DELETE "/files/$id2" >/dev/null; expect 200

step "refusals leave no row"
before_refusals=$(count_files)
sig3=$(api GET "/generate-signature?resource_type=image"); expect 200
[ "$(upload "$work/pixel.png" "$sig3")" = 200 ] || fail "third upload"
good=$(cat "$work/upload")

forged=$(jq '.signature = "0000000000000000000000000000000000000000"' <<<"$good")
api POST /save-metadata "$BROKER_TOKEN" "$forged" >/dev/null; expect 422 invalid_evidence

api POST /save-metadata "$OTHER_TOKEN" "$good" >/dev/null; expect 403 forbidden

moved=$(jq '.secure_url = "https://evil.example.com/x.png"' <<<"$good")
api POST /save-metadata "$BROKER_TOKEN" "$moved" >/dev/null; expect 422 invalid_evidence

missing=$(jq '{public_id: (.public_id + "-nope"), secure_url, resource_type}' <<<"$good")
api POST /save-metadata "$BROKER_TOKEN" "$missing" >/dev/null; expect 422 upload_not_found

status=$(upload "$work/pixel.png" "$sig3" -F "tags=not-signed")
[ "$status" = 401 ] || fail "a tampered upload field was accepted by the provider ($status)"
grep -q 'Invalid Signature' "$work/upload" || fail "unexpected provider error: $(cat "$work/upload")"

[ "$(count_files)" = "$before_refusals" ] || fail "a refused request left a row"
[ "$(count_files)" = "$before" ] || fail "rows left behind"
echo "OK: cloudinary flow complete"
