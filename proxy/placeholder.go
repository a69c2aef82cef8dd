package proxy

import (
	"crypto/rand"
	"strings"
)

// publicPrefixes are the published prefixes of well-known token formats. A placeholder
// keeps the one its value starts with, since client libraries check them; anything
// else of the value it does not keep.
var publicPrefixes = []string{
	"github_pat_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "glpat-", "gldt-", "glrt-",
	"sk-ant-api03-", "sk-ant-", "sk-proj-", "sk-svcacct-", "sk-", "sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_",
	"xoxb-", "xoxp-", "xoxa-", "xapp-", "npm_", "pypi-", "hf_", "dop_v1_", "shpat_", "shpss_", "glc_", "lin_api_", "AIza", "ya29.",
	"SG.", "dckr_pat_", "figd_", "sq0atp-", "EAAC", "r8_", "gsk_", "nvapi-", "pplx-", "csk-", "tvly-",
}

// MinPlaceholder is the shortest placeholder: a value shorter than this gets a longer one.
const MinPlaceholder = 32

// alphabet is what a placeholder is made of after its prefix: any client library that
// accepts a token accepts these, in a header, a URL's user info or a query.
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Placeholder returns a fresh stand-in for value: its token format's public prefix, if
// it has one, then random letters and digits, as long as the value (at least
// MinPlaceholder), so that a client that checks a token's shape accepts it. It is unique
// per run (at least 128 random bits) and never the value.
func Placeholder(value []byte) string {
	prefix := ""
	for _, p := range publicPrefixes {
		if strings.HasPrefix(string(value), p) && len(value) >= len(p)+MinPlaceholder/2 {
			prefix = p
			break
		}
	}
	n := max(len(value), MinPlaceholder, len(prefix)+22) - len(prefix)
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	// 62 letters and digits: a byte below 248 (= 4*62) maps without bias; redraw others.
	for i := 0; i < n; i++ {
		for b[i] >= 248 {
			var c [1]byte
			rand.Read(c[:])
			b[i] = c[0]
		}
		b[i] = alphabet[b[i]%62]
	}
	return prefix + string(b)
}
