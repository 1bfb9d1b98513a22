#!/usr/bin/env bash
# upload.sh FILE: the signed-upload flow with curl and jq, as any client
# does it. It asks the broker for a signature, sends FILE straight to the
# provider's `upload_url` with exactly the returned fields, hands the
# provider's answer to /save-metadata, and prints the saved file's URL on
# stdout. Progress and errors go to stderr; a refusal exits non-zero with
# the broker's (or the provider's) message.
#
#   BROKER_TOKEN  a JWT for the user (required): the one `broker dev` prints,
#                 or `broker token --sub USER`
#   BROKER_URL    the broker, default http://127.0.0.1:3000
#   PROVIDER      cloudinary (default) or uploadcare
#
# Example, against `go run ./cmd/broker dev`:
#   export BROKER_TOKEN=…   # from the dev banner
#   url=$(docs/examples/upload.sh cat.png) && curl -sO "$url"
set -euo pipefail

me=${0##*/}
die() { echo "$me: $*" >&2; exit 1; }
say() { echo "$me: $*" >&2; }

[ $# -eq 1 ] || { echo "usage: BROKER_TOKEN=… [BROKER_URL=…] [PROVIDER=cloudinary|uploadcare] $me FILE" >&2; exit 2; }
file=$1
[ -f "$file" ] && [ -r "$file" ] || die "cannot read file '$file'"
[ -n "${BROKER_TOKEN:-}" ] || die "BROKER_TOKEN is not set: use the token \`broker dev\` prints, or \`broker token --sub USER\`"
broker_url=${BROKER_URL:-http://127.0.0.1:3000}
broker_url=${broker_url%/}
provider=${PROVIDER:-cloudinary}
case $provider in
  cloudinary | uploadcare) ;;
  *) die "PROVIDER must be cloudinary or uploadcare, not '$provider'" ;;
esac
for tool in curl jq; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# broker METHOD PATH [JSON_FILE]: calls the broker and prints the answer's
# body; any status but 2xx ends the script with the broker's message.
broker() {
  local args=(-sS -X "$1" -o "$work/answer" -w '%{http_code}' -H "Authorization: Bearer $BROKER_TOKEN")
  [ $# -lt 3 ] || args+=(-H 'Content-Type: application/json' --data-binary "@$3")
  local status
  status=$(curl "${args[@]}" "$broker_url$2") || die "the broker at $broker_url did not answer"
  case $status in
    2??) cat "$work/answer" ;;
    *) die "the broker refused $1 $2 (HTTP $status): $(jq -er 'select(.error | type == "string") | "\(.error) (\(.code))"' "$work/answer" 2>/dev/null || cat "$work/answer")" ;;
  esac
}

say "asking $broker_url to sign an upload for $provider"
broker GET "/generate-signature?provider=$provider" >"$work/signature"
upload_url=$(jq -er .upload_url "$work/signature") || die "the signature answer has no upload_url: $(cat "$work/signature")"

# The form is exactly what the broker returned: `params`, plus api_key and
# signature for Cloudinary (Uploadcare's params already hold its signature).
# --form-string keeps values literal: curl's -F would read a value starting
# with @ or < as a file name.
form=()
if [ "$provider" = cloudinary ]; then
  form+=(--form-string "api_key=$(jq -er .api_key "$work/signature")")
  form+=(--form-string "signature=$(jq -er .signature "$work/signature")")
fi
while IFS= read -r -d '' field; do
  form+=(--form-string "$field")
done < <(jq -j '.params | to_entries[] | "\(.key)=\(.value)\u0000"' "$work/signature")
# The file name goes in double quotes, its own quotes and backslashes
# escaped, so commas and semicolons in it reach the provider intact.
quoted=${file//\\/\\\\}
quoted=${quoted//\"/\\\"}
form+=(-F "file=@\"$quoted\"")

say "uploading $file ($(wc -c <"$file" | tr -d ' ') bytes) to $upload_url"
status=$(curl -sS -o "$work/upload" -w '%{http_code}' "${form[@]}" "$upload_url") || die "the provider at $upload_url did not answer"
# Cloudinary answers errors as {"error":{"message"}}, Uploadcare as plain
# text, or as {"error":{"content"}} with HTTP 200 under ?jsonerrors=1.
problem=$(jq -r '.error | objects | .message // .content // tostring' "$work/upload" 2>/dev/null || true)
if [ "${status:0:1}" != 2 ] || [ -n "$problem" ]; then
  die "the provider refused the upload (HTTP $status): ${problem:-$(cat "$work/upload")}"
fi

say "saving the provider's answer"
jq --arg provider "$provider" '. + {provider: $provider}' "$work/upload" >"$work/save"
broker POST /save-metadata "$work/save" >"$work/saved"
say "saved as file $(jq -r .file.id "$work/saved") ($(jq -r .file.provider_id "$work/saved"))"
jq -er .file.url "$work/saved" || die "the broker's answer has no file URL: $(cat "$work/saved")"
