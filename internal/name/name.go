// Package name is the one rule for a secret's name, and how a string that was meant to
// be one is shown. A value pasted where a name goes (secrets rotate <token>) must never
// be echoed on stderr or written into the audit log: a string that is not a valid name is
// shown only by its length.
package name

import "fmt"

// Valid reports whether s matches ^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > 128 || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '_' && c != '.' && c != '-' && c != '/' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// Shown is s as a message may show it: quoted when it is a valid name, else only its
// length ("an invalid name of 40 bytes").
func Shown(s string) string {
	if Valid(s) {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("an invalid name of %d bytes", len(s))
}

// Word is Shown without the quotes, for a JSON path or an audit field.
func Word(s string) string {
	if Valid(s) {
		return s
	}
	return Shown(s)
}

// LeaseID is a lease id as a message may show it: as it is when it has a lease id's form
// (lease_ and 26 characters of Crockford base32), else only its length.
func LeaseID(s string) string {
	ok := len(s) == len("lease_")+26 && s[:6] == "lease_"
	for i := 6; ok && i < len(s); i++ {
		c := s[i]
		ok = '0' <= c && c <= '9' || 'A' <= c && c <= 'Z'
	}
	if ok {
		return s
	}
	return fmt.Sprintf("an invalid lease id of %d bytes", len(s))
}
