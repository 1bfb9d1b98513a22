package signer

import "crypto/subtle"

// Equal reports whether a and b are the same string, in time that depends
// only on their lengths. Use it wherever a signature is checked: the length
// of a signature is public (it follows from the algorithm), its content is
// what an attacker must not learn through timing.
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
