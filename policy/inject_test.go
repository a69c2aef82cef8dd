package policy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/agent-secrets/secrets/policy"
)

func TestInjectHosts(t *testing.T) {
	for _, c := range []struct {
		host string
		ok   bool
	}{
		{"api.github.com", true}, {"localhost", true}, {"localhost:8443", true}, {"127.0.0.1", true}, {"[::1]:443", true}, {"::1", true},
		{"*.example.com", true}, {"*.github.io", false}, {"*.com", false}, {"*.co.uk", false}, {"*.example.co.uk", true},
		{"Api.GitHub.com", false}, {"", false}, {"a..b", false}, {"-a.com", false}, {"a_b.com", false}, {"api.github.com:0", false},
		{"api.github.com:65536", false}, {"api.github.com:", false}, {"*", false}, {"*.", false}, {"a.*.com", false}, {"evil.com/x", false},
		{"[::1", false}, {"[::1]x", false}, {"host:port", false},
	} {
		err := (&policy.InjectRule{Hosts: []string{c.host}}).Validate("r", false)
		if (err == nil) != c.ok {
			t.Errorf("%q: %v", c.host, err)
		}
		if err != nil && !errors.Is(err, policy.ErrInvalid) {
			t.Errorf("%q: %v does not match ErrInvalid", c.host, err)
		}
	}
	if err := (&policy.InjectRule{Hosts: []string{"*.github.io"}, SharedSuffix: true}).Validate("r", false); err != nil {
		t.Errorf("an acknowledged shared suffix: %v", err)
	}
}

func TestInjectMatch(t *testing.T) {
	r := &policy.InjectRule{Hosts: []string{"api.github.com", "*.example.com", "localhost:8443", "127.0.0.1"}, Methods: []string{"GET"}, Paths: []string{"/repos/"}}
	for _, c := range []struct {
		host string
		port int
		ok   bool
	}{
		{"api.github.com", 443, true}, {"api.github.com", 8443, true}, {"evil-api.github.com", 443, false}, {"github.com", 443, false},
		{"a.example.com", 443, true}, {"a.b.example.com", 443, true}, {"example.com", 443, false}, {"aexample.com", 443, false},
		{"localhost", 8443, true}, {"localhost", 443, false}, {"127.0.0.1", 1, true}, {"127.0.0.2", 443, false},
	} {
		if got := r.MatchHost(c.host, c.port); got != c.ok {
			t.Errorf("%s:%d: %v", c.host, c.port, got)
		}
	}
	if !r.MatchRequest("GET", "/repos/x") || r.MatchRequest("POST", "/repos/x") || r.MatchRequest("GET", "/user") {
		t.Error("methods and paths")
	}
}

func TestInjectWithin(t *testing.T) {
	pol := &policy.InjectRule{Hosts: []string{"api.github.com", "*.example.com", "localhost:8443"}, Format: "Bearer {value}"}
	for _, c := range []struct {
		mine *policy.InjectRule
		ok   bool
	}{
		{nil, true},
		{&policy.InjectRule{Hosts: []string{"api.github.com"}}, true},
		{&policy.InjectRule{Hosts: []string{"a.example.com", "*.b.example.com"}}, true},
		{&policy.InjectRule{Hosts: []string{"localhost:8443"}}, true},
		{&policy.InjectRule{Hosts: []string{"localhost"}}, false},
		{&policy.InjectRule{Hosts: []string{"*.com"}}, false},
		{&policy.InjectRule{Hosts: []string{"evil.com"}}, false},
		{&policy.InjectRule{Hosts: []string{"api.github.com"}, Query: "key"}, false},
		{&policy.InjectRule{Hosts: []string{"api.github.com"}, Format: "token {value}"}, false},
	} {
		got, err := c.mine.Within(pol)
		if (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.mine, err)
			continue
		}
		if err != nil && !errors.Is(err, policy.ErrInjectNotAllowed) {
			t.Errorf("%+v: %v", c.mine, err)
		}
		if err == nil && got.Format != pol.Format {
			t.Errorf("%+v: the policy's format was not kept: %+v", c.mine, got)
		}
	}
}

func TestDecodeInjectStrict(t *testing.T) {
	for _, c := range []struct{ json, path string }{
		{`[]`, "x"}, {`{"hosts":"a.com"}`, "x.hosts"}, {`{"hosts":["a.com"],"x":1}`, "x.x"},
		{`{"hosts":["a.com"],"basic":"user"}`, "x.basic"}, {`{"hosts":["a.com"],"basic":"password","query":"k"}`, "x.header"},
		{`{"hosts":["a.com"],"methods":["get"]}`, "x.methods[0]"}, {`{"hosts":["a.com"],"paths":["repos"]}`, "x.paths[0]"},
		{`{"hosts":["a.com"],"format":"a\nb {value}"}`, "x.format"}, {`{"hosts":["a.com"],"roots":["not pem"]}`, "x.roots[0]"},
	} {
		_, err := policy.DecodeInject([]byte(c.json), "x", true)
		var ie *policy.InjectError
		if !errors.As(err, &ie) || ie.Path != c.path {
			t.Errorf("%s: %v (want the path %s)", c.json, err, c.path)
		}
	}
	r, err := policy.DecodeInject([]byte(`{"hosts":["a.com"],"query":"key","methods":["GET"],"paths":["/v1/"]}`), "x", false)
	if err != nil || r.Query != "key" || r.Where() != "the query parameter key" {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestPolicyKeepsInject(t *testing.T) {
	r := policy.Rule{Inject: &policy.InjectRule{Hosts: []string{"api.github.com"}, Format: "Bearer {value}"}}
	back, err := policy.Decode(policy.Encode(r))
	if err != nil || back.Inject == nil || back.Inject.Format != "Bearer {value}" || !strings.Contains(string(policy.Encode(r)), `"inject"`) {
		t.Fatalf("%+v %v", back, err)
	}
	// Exec allows inject, which hands out less; inject alone does not allow exec.
	execOnly := policy.Rule{Deliver: []policy.Delivery{policy.Exec}}
	if err := execOnly.Check(policy.Request{Secret: "s", Delivery: policy.Inject}); err != nil {
		t.Errorf("exec-only refuses inject: %v", err)
	}
	injectOnly := policy.Rule{Deliver: []policy.Delivery{policy.Inject}}
	if err := injectOnly.Check(policy.Request{Secret: "s", Delivery: policy.Exec}); !errors.Is(err, policy.ErrDeliveryNotAllowed) {
		t.Errorf("inject-only allows exec: %v", err)
	}
}

func TestInjectPathsAreSegments(t *testing.T) {
	r := &policy.InjectRule{Hosts: []string{"a.com"}, Paths: []string{"/repos", "/v1/"}}
	for path, want := range map[string]bool{"/repos": true, "/repos/x": true, "/repository": false, "/reposx/y": false, "/v1/": true, "/v1/x": true, "/v1": false, "/v10/x": false} {
		if got := r.MatchRequest("GET", path); got != want {
			t.Errorf("%s: %v", path, got)
		}
	}
}
