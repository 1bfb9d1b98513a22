// Package signer holds each provider's cryptography as pure functions: it
// signs what the broker hands out, and verifies what clients and providers
// send back (upload responses, webhooks, signed URLs). It does no I/O and
// depends on the standard library only, so every rule can be checked against
// the reference vectors in shared/specs without a network or a database.
//
// Every comparison of a signature goes through Equal, which runs in constant
// time: a byte-by-byte early exit would let an attacker recover a valid
// signature one character at a time by measuring response times.
package signer
