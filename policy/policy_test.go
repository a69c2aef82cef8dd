package policy

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string][]string{
		"npm test":            {"npm", "test"},
		"  make   *  ":        {"make", "*"},
		`sh -c 'echo $X; id'`: {"sh", "-c", "echo $X; id"},
		`a "b c" d\ e`:        {"a", "b c", "d e"},
		`a "x\"y"`:            {"a", `x"y`},
		`a ''`:                {"a", ""},
	} {
		got, err := SplitCommand(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "   ", `a "b`, `a\`, "* x", "a * b", "*"} {
		if _, err := SplitCommand(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SplitCommand(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

func TestAllows(t *testing.T) {
	rules := [][]string{{"npm", "test"}, {"make", "*"}}
	for _, tc := range []struct {
		argv []string
		ok   bool
	}{
		{[]string{"npm", "test"}, true},
		{[]string{"npm", "test", "--", "x"}, false},
		{[]string{"npm"}, false},
		{[]string{"make"}, true},
		{[]string{"make", "all", "V=1"}, true},
		{[]string{"/usr/bin/make", "all"}, false},
		{[]string{"sh", "-c", "make"}, false},
	} {
		if got := Allows(rules, tc.argv); got != tc.ok {
			t.Errorf("Allows(%q) = %v", tc.argv, got)
		}
	}
	if Allows(nil, []string{"true"}) {
		t.Error("no rule allows a command")
	}
}

func TestRuleOverAndCheck(t *testing.T) {
	one, ttl, once := 1, "10m", ApproveOnce
	def := Rule{Deliver: []Delivery{Exec}, MaxTTL: &ttl, Approve: &once}
	own := Rule{Deliver: []Delivery{Raw, Exec}, MaxUses: &one}
	r := own.Over(def)
	if !slices.Equal(r.Deliver, own.Deliver) || r.TTL() != 10*time.Minute || r.Uses() != 1 || r.Approval() != ApproveOnce {
		t.Fatalf("Over: %+v", r)
	}
	me := func() Caller { return Caller{User: "alice", Groups: []string{"dev"}} }
	ok := Request{Secret: "k", Delivery: Raw, Caller: me, Client: "ci-1", TTL: 5 * time.Minute}
	if err := r.Check(ok); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		change func(*Rule, *Request)
		want   error
	}{
		{func(_ *Rule, q *Request) { q.Delivery = Env }, ErrDeliveryNotAllowed},
		{func(_ *Rule, q *Request) { q.TTL = time.Hour }, ErrTTLExceedsMax},
		{func(_ *Rule, q *Request) { q.Uses = 1 }, ErrUsesExhausted},
		{func(r *Rule, _ *Request) { r.Callers = []string{"bob", "%ops"} }, ErrCallerNotAllowed},
		{func(r *Rule, _ *Request) { r.Clients = []string{"agent-*"} }, ErrCallerNotAllowed},
		{func(r *Rule, _ *Request) { r.Callers = []string{"%dev"}; r.Clients = []string{"ci-*"} }, nil},
		{func(r *Rule, _ *Request) { r.Callers = []string{"*"}; r.Clients = []string{"*"} }, nil},
	} {
		rr, q := r, ok
		tc.change(&rr, &q)
		if err := rr.Check(q); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Errorf("%+v / %+v: %v, want %v", rr, q, err, tc.want)
		}
	}
}

func TestValidateAndCodec(t *testing.T) {
	neg, bad, later := -1, "sometimes", "0s"
	for _, r := range []Rule{
		{MaxUses: &neg}, {Approve: &bad}, {MaxTTL: &later}, {Deliver: []Delivery{"pigeon"}},
		{Clients: []string{"a*b"}}, {Callers: []string{"a b"}}, {Exec: [][]string{{"*"}}},
	} {
		if err := r.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", r, err)
		}
	}
	if Encode(Rule{}) != nil {
		t.Error("the zero rule is stored as nothing")
	}
	ttl := "1h"
	in := Rule{Clients: []string{"ci-*"}, MaxTTL: &ttl, Exec: [][]string{{"npm", "test"}}}
	out, err := Decode(Encode(in))
	if err != nil || *out.MaxTTL != ttl || !slices.Equal(out.Clients, in.Clients) || !slices.EqualFunc(out.Exec, in.Exec, slices.Equal) {
		t.Fatalf("round trip: %+v %v", out, err)
	}
	if _, err := Decode([]byte(`{"max_uses":"x"}`)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a rule that is not one: %v", err)
	}
}

func TestDecodeAgreesWithJSON(t *testing.T) {
	for _, raw := range []string{
		`{}`, `{"callers":["alice","%dev"],"clients":["ci-*"]}`, `{"max_ttl":"15m","max_uses":1}`,
		`{"deliver":["raw","exec"],"approve":"always"}`, `{"exec":[["npm","test"],["make","*"]]}`, `{"callers":[]}`,
	} {
		got, err := Decode([]byte(raw))
		var want Rule
		if jerr := json.Unmarshal([]byte(raw), &want); err != nil || jerr != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Decode %+v %v, encoding/json %+v %v", raw, got, err, want, jerr)
		}
	}
	for _, bad := range []string{`{"max_uses":"1"}`, `{"x":1}`, `[]`, `{"exec":[1]}`, `{} x`} {
		if _, err := Decode([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
