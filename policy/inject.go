package policy

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// ErrInjectNotAllowed is a mapping's injection the policy does not allow: a host outside
// the policy's rule, or a rule the policy's replaces.
var ErrInjectNotAllowed = errors.New("inject not allowed")

// InjectRule is where a value goes in a child's outbound requests instead of into the child
// (DESIGN.md section 12): to which hosts, in which part of the request, for which methods
// and paths. The child holds a placeholder; the exec supervisor's proxy puts the value
// where the rule says, and only there.
type InjectRule struct {
	// Hosts are exact names ("api.github.com"), IP addresses, or "*.example.com" for any
	// name below example.com (not example.com itself), each optionally with ":port". A
	// wildcard on a suffix that many parties share needs SharedSuffix.
	Hosts []string `json:"hosts"`
	// Header is the request header that carries the value (Authorization when neither
	// Basic nor Query is given). With Format ("Bearer {value}") the header becomes the
	// format with the value in it; without, the placeholder is replaced where the child
	// put it, inside Basic credentials too.
	Header string `json:"header,omitempty"`
	Format string `json:"format,omitempty"`
	// Basic is "username" or "password": the value is that part of the Authorization
	// header's Basic credentials (git over https sends the token as the password).
	Basic string `json:"basic,omitempty"`
	// Query is the URL query parameter that carries the value.
	Query string `json:"query,omitempty"`
	// Methods and Paths, when given, bound the requests that get the value: methods
	// exactly, paths by prefix.
	Methods []string `json:"methods,omitempty"`
	Paths   []string `json:"paths,omitempty"`
	// SharedSuffix acknowledges a wildcard on a shared suffix (*.github.io,
	// *.amazonaws.com): anyone can run a host there.
	SharedSuffix bool `json:"shared_suffix,omitempty"`
	// Roots are PEM certificates the proxy trusts, besides the system's, for this rule's
	// hosts: only an admin sets them, in the policy.
	Roots []string `json:"roots,omitempty"`
}

// Where says in words where the rule puts the value, for messages and the audit log.
func (r *InjectRule) Where() string {
	switch {
	case r.Basic != "":
		return "the Basic " + r.Basic
	case r.Query != "":
		return "the query parameter " + r.Query
	case r.Format != "":
		return fmt.Sprintf("the %s header as %q", r.HeaderName(), r.Format)
	}
	return "the " + r.HeaderName() + " header"
}

// HeaderName is the header the rule writes: Header, or Authorization.
func (r *InjectRule) HeaderName() string {
	if r.Header == "" {
		return "Authorization"
	}
	return r.Header
}

// MaxInjectHosts bounds one rule's hosts.
const MaxInjectHosts = 32

// sharedSuffixes are suffixes below which anyone can get a name (hosting, storage, CDN
// and tunnel services): a wildcard on one sends the value to strangers' hosts. Not the
// whole public-suffix list; the ones a credential is likely to be aimed at.
var sharedSuffixes = []string{
	"amazonaws.com", "cloudfront.net", "elasticbeanstalk.com", "awsapprunner.com", "on.aws",
	"github.io", "githubusercontent.com", "gitlab.io", "bitbucket.io",
	"herokuapp.com", "herokudns.com", "appspot.com", "run.app", "cloudfunctions.net", "web.app", "firebaseapp.com",
	"googleusercontent.com", "storage.googleapis.com", "azurewebsites.net", "azureedge.net", "azurefd.net",
	"cloudapp.net", "cloudapp.azure.com", "blob.core.windows.net", "trafficmanager.net",
	"vercel.app", "now.sh", "netlify.app", "pages.dev", "workers.dev", "r2.dev", "trycloudflare.com",
	"fly.dev", "onrender.com", "railway.app", "glitch.me", "repl.co", "replit.dev", "ngrok.io", "ngrok-free.app",
	"ngrok.app", "loca.lt", "readthedocs.io", "supabase.co", "deno.dev", "surge.sh", "codeberg.page",
	"digitaloceanspaces.com", "ondigitalocean.app", "linodeobjects.com", "b-cdn.net", "fastly.net", "akamaized.net",
	"azurestaticapps.net", "huggingface.co", "hf.space", "modal.run", "streamlit.app",
}

// publicSecondLevels are second-level labels under a two-letter country code that are
// themselves public suffixes (co.uk, com.au): "*.co.uk" is every company in the UK.
var publicSecondLevels = []string{"co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go", "gob", "nic", "mil", "ltd", "plc", "me"}

// Validate checks the rule, naming the field (below at, a JSON path) that is wrong. A
// rule from a project file may not carry roots: trust is an admin's to give.
func (r *InjectRule) Validate(at string, fromPolicy bool) error {
	bad := func(field, format string, args ...any) error {
		return &InjectError{Path: at + "." + field, Msg: fmt.Sprintf(format, args...)}
	}
	if len(r.Hosts) == 0 {
		return bad("hosts", "missing; name the hosts that get the value, such as api.github.com")
	}
	if len(r.Hosts) > MaxInjectHosts {
		return bad("hosts", "%d hosts; a rule names at most %d", len(r.Hosts), MaxInjectHosts)
	}
	for i, h := range r.Hosts {
		if err := checkHost(h, r.SharedSuffix); err != nil {
			return bad(fmt.Sprintf("hosts[%d]", i), "%v", err)
		}
	}
	places := 0
	for _, set := range []bool{r.Header != "" || r.Format != "", r.Basic != "", r.Query != ""} {
		if set {
			places++
		}
	}
	if places > 1 {
		return bad("header", "give one of header (with format), basic or query: the value goes to one place")
	}
	if r.Header != "" {
		if !token(r.Header) {
			return bad("header", "%q is not a header name", r.Header)
		}
		switch strings.ToLower(r.Header) {
		case "host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "proxy-authorization", "proxy-connection", "keep-alive":
			return bad("header", "%s is part of how the request travels, not a place for a credential", r.Header)
		}
	}
	if r.Format != "" {
		if strings.Count(r.Format, "{value}") != 1 {
			return bad("format", "%q must hold {value} exactly once", r.Format)
		}
		if strings.ContainsFunc(r.Format, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
			return bad("format", "holds a control character")
		}
	}
	if r.Basic != "" && r.Basic != "username" && r.Basic != "password" {
		return bad("basic", "%q is not username or password", r.Basic)
	}
	if r.Query != "" && (!token(r.Query) || strings.ContainsAny(r.Query, "&=+%")) {
		return bad("query", "%q is not a query parameter name", r.Query)
	}
	for i, m := range r.Methods {
		if !token(m) || strings.ToUpper(m) != m {
			return bad(fmt.Sprintf("methods[%d]", i), "%q is not a method such as GET or POST", m)
		}
	}
	for i, p := range r.Paths {
		if !strings.HasPrefix(p, "/") || strings.ContainsFunc(p, func(c rune) bool { return c <= 0x20 || c == 0x7f || c == '?' || c == '#' }) {
			return bad(fmt.Sprintf("paths[%d]", i), "%q is not a path prefix such as /repos/", p)
		}
	}
	if len(r.Roots) > 0 && !fromPolicy {
		return bad("roots", "only an admin gives trust roots, in the policy (secrets policy set NAME --inject-ca FILE)")
	}
	for i, p := range r.Roots {
		if _, err := ParseRoot(p); err != nil {
			return bad(fmt.Sprintf("roots[%d]", i), "%v", err)
		}
	}
	return nil
}

// InjectError is a rule that is wrong, at a JSON path. It matches ErrInvalid.
type InjectError struct {
	Path string // e.g. secrets[0].inject.hosts[1]
	Msg  string
}

func (e *InjectError) Error() string        { return fmt.Sprintf("%v: %s: %s", ErrInvalid, e.Path, e.Msg) }
func (e *InjectError) Is(target error) bool { return target == ErrInvalid }

// ParseRoot reads one PEM certificate of a rule's roots.
func ParseRoot(p string) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(p))
	if block == nil || block.Type != "CERTIFICATE" || strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("not one PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// token reports whether s is an HTTP token (RFC 9110), as header names and methods are.
func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// checkHost checks one host of a rule.
func checkHost(h string, shared bool) error {
	name, _, err := SplitHost(h)
	if err != nil {
		return err
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return nil
	}
	wild := strings.HasPrefix(name, "*.")
	base := strings.TrimPrefix(name, "*.")
	labels := strings.Split(base, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' || strings.ContainsFunc(l, func(c rune) bool {
			return !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-')
		}) {
			return fmt.Errorf("%q is not a host name (lower case, such as api.github.com or *.example.com)", h)
		}
	}
	if !wild {
		return nil
	}
	if len(labels) < 2 || len(labels) == 2 && len(labels[1]) == 2 && slices.Contains(publicSecondLevels, labels[0]) {
		return fmt.Errorf("%q covers a whole public suffix: every site under it would get the value", h)
	}
	if !shared && SharedSuffix(base) {
		return fmt.Errorf("%q is a wildcard on %s, where anyone can run a host; name the hosts, or acknowledge it (shared_suffix: true, --inject-shared-suffix)", h, base)
	}
	return nil
}

// SharedSuffix reports whether name is, or is below, a suffix where anyone can get a name.
func SharedSuffix(name string) bool {
	return slices.ContainsFunc(sharedSuffixes, func(s string) bool { return name == s || strings.HasSuffix(name, "."+s) })
}

// SplitHost splits a rule's host into its name (lower case, as given) and port (0 for
// any). An IPv6 address with a port is written [::1]:8443.
func SplitHost(h string) (string, int, error) {
	name, portText := h, ""
	switch {
	case strings.HasPrefix(h, "["):
		end := strings.IndexByte(h, ']')
		if end < 0 || end+1 < len(h) && h[end+1] != ':' {
			return "", 0, fmt.Errorf("%q is not [address] or [address]:port", h)
		}
		name = h[1:end]
		if end+1 < len(h) {
			portText = h[end+2:]
		}
	case strings.Count(h, ":") == 1:
		name, portText, _ = strings.Cut(h, ":")
	}
	if name == "" {
		return "", 0, fmt.Errorf("%q has no host name", h)
	}
	port := 0
	if portText != "" || strings.HasSuffix(h, ":") {
		n, err := strconv.Atoi(portText)
		if err != nil || n < 1 || n > 65535 {
			return "", 0, fmt.Errorf("%q: the port must be 1-65535", h)
		}
		port = n
	}
	if strings.ToLower(name) != name {
		return "", 0, fmt.Errorf("%q: write host names in lower case", name)
	}
	return name, port, nil
}

// MatchHost reports whether the rule's hosts cover host at port (host lower case, as the
// CONNECT target names it, without a trailing dot).
func (r *InjectRule) MatchHost(host string, port int) bool {
	return slices.ContainsFunc(r.Hosts, func(h string) bool { return hostMatches(h, host, port) })
}

func hostMatches(rule, host string, port int) bool {
	name, p, err := SplitHost(rule)
	if err != nil || p != 0 && p != port {
		return false
	}
	if base, ok := strings.CutPrefix(name, "*."); ok {
		return strings.HasSuffix(host, "."+base)
	}
	if a, err := netip.ParseAddr(name); err == nil {
		b, err := netip.ParseAddr(host)
		return err == nil && a.Unmap() == b.Unmap()
	}
	return name == host
}

// MatchRequest reports whether a request's method and path are ones the rule gives the
// value to.
func (r *InjectRule) MatchRequest(method, path string) bool {
	if len(r.Methods) > 0 && !slices.Contains(r.Methods, method) {
		return false
	}
	// A prefix is whole segments: /repos covers /repos and /repos/x, not /repository.
	return len(r.Paths) == 0 || slices.ContainsFunc(r.Paths, func(p string) bool {
		return strings.HasPrefix(path, p) && (strings.HasSuffix(p, "/") || len(path) == len(p) || path[len(p)] == '/')
	})
}

// Within checks a project's rule against the policy's for the same secret: its hosts
// must be among the policy's (each covered by one of them), and it may not move the value
// elsewhere. It returns the rule to use: the policy's, with the project's hosts.
func (r *InjectRule) Within(p *InjectRule) (*InjectRule, error) {
	out := *p
	if r == nil {
		return &out, nil
	}
	for _, h := range r.Hosts {
		name, port, _ := SplitHost(h)
		covered := slices.ContainsFunc(p.Hosts, func(ph string) bool {
			pn, pp, _ := SplitHost(ph)
			if pp != 0 && pp != port {
				return false
			}
			if strings.HasPrefix(name, "*.") {
				return pn == name || strings.HasPrefix(pn, "*.") && strings.HasSuffix(name, "."+strings.TrimPrefix(pn, "*."))
			}
			return hostMatches(ph, name, port) || pp == 0 && hostMatches(ph, name, 0)
		})
		if !covered {
			return nil, fmt.Errorf("%w: %s is not among the hosts the policy gives it (%s)", ErrInjectNotAllowed, h, strings.Join(p.Hosts, ", "))
		}
	}
	if r.Header != "" && !strings.EqualFold(r.Header, p.HeaderName()) || r.Format != "" && r.Format != p.Format ||
		r.Basic != "" && r.Basic != p.Basic || r.Query != "" && r.Query != p.Query {
		return nil, fmt.Errorf("%w: the policy puts it in %s; a project file may not move it", ErrInjectNotAllowed, p.Where())
	}
	out.Hosts = slices.Clone(r.Hosts)
	return &out, nil
}

// DecodeInject reads a rule from JSON strictly (unknown keys refused), naming the JSON
// path of what is wrong below at.
func DecodeInject(raw []byte, at string, fromPolicy bool) (*InjectRule, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, &InjectError{Path: at, Msg: `must be an object such as {"hosts":["api.github.com"],"header":"Authorization","format":"Bearer {value}"}`}
	}
	known := []string{"hosts", "header", "format", "basic", "query", "methods", "paths", "shared_suffix", "roots"}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var r InjectRule
	for _, k := range keys {
		if !slices.Contains(known, k) {
			return nil, &InjectError{Path: at + "." + k, Msg: "unknown key (allowed: " + strings.Join(known, ", ") + ")"}
		}
		var dst any
		what := "a string"
		switch k {
		case "hosts":
			dst, what = &r.Hosts, "an array of strings"
		case "header":
			dst = &r.Header
		case "format":
			dst = &r.Format
		case "basic":
			dst = &r.Basic
		case "query":
			dst = &r.Query
		case "methods":
			dst, what = &r.Methods, "an array of strings"
		case "paths":
			dst, what = &r.Paths, "an array of strings"
		case "shared_suffix":
			dst, what = &r.SharedSuffix, "true or false"
		case "roots":
			dst, what = &r.Roots, "an array of PEM strings"
		}
		if err := json.Unmarshal(fields[k], dst); err != nil {
			return nil, &InjectError{Path: at + "." + k, Msg: "must be " + what}
		}
	}
	if err := r.Validate(at, fromPolicy); err != nil {
		return nil, err
	}
	return &r, nil
}
