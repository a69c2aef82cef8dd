package vault

import (
	"fmt"
	"strings"
	"testing"

	"github.com/agent-secrets/secrets/proxy"
)

// TestFrontEntriesAreTheCallersWord: what a caller side reports of its proxy reaches the
// owner's log labelled as its word, escaped, bounded, with only our event kinds and only
// names that can be secrets.
func TestFrontEntriesAreTheCallersWord(t *testing.T) {
	f := &FrontReport{Events: []proxy.Event{
		{Kind: "lease_grant", Secret: "gh", Host: "x", Why: "fake\n\x1b[2Kgrant"},
		{Kind: "egress_denied", Secret: "bad name\n", Host: "h", Why: "w"},
	}}
	for i := range 100 {
		f.Report.Tunnelled = append(f.Report.Tunnelled, proxy.Count{Host: fmt.Sprintf("h%d", i), N: 1})
	}
	out := frontEntries(f)
	if len(out) != MaxFrontEntries {
		t.Fatalf("%d entries", len(out))
	}
	for _, e := range out {
		if !validEventKind(e.Event) || !strings.HasSuffix(e.Detail, "(as the caller side reports)") || strings.ContainsAny(e.Detail+e.Secret, "\n\x1b") {
			t.Errorf("%+v", e)
		}
	}
	tail := frontEntries(&FrontReport{Events: f.Events})
	if tail[0].Event != "egress" || tail[1].Secret != "" {
		t.Fatalf("%+v", tail)
	}
}
