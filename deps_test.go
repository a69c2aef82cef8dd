package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/agent-secrets/secrets"

// forbidden are the arrows DESIGN.md section 2 rules out: package → what it must never
// depend on, directly or not. Every package of ours that is not main must also stay free
// of the CLI library, and never reach vault (only main composes through it).
var forbidden = map[string][]string{
	"store":      {"lease", "audit", "envfile", "killswitch", "rotate", "supervisor", "redact", "mcp"},
	"lease":      {"store", "audit", "envfile", "killswitch", "rotate", "supervisor"},
	"audit":      {"store", "lease", "envfile", "killswitch", "rotate", "supervisor"},
	"envfile":    {"store", "lease", "audit", "killswitch", "rotate", "supervisor"},
	"killswitch": {"store", "audit", "rotate"},
	"rotate":     {"store", "lease", "audit", "envfile", "killswitch", "supervisor"},
	"redact":     {"store", "lease", "audit", "envfile", "killswitch", "rotate", "supervisor"},
	"supervisor": {"store", "lease", "audit", "envfile", "killswitch", "rotate"},
	"mcp":        {"store", "lease", "audit", "envfile", "killswitch", "rotate", "supervisor", "redact"},
	"policy":     {"store", "lease", "audit", "envfile", "killswitch", "rotate", "supervisor", "redact", "mcp"},
	"proxy":      {"store", "lease", "audit", "envfile", "killswitch", "rotate", "supervisor", "mcp"},
	"guard":      {"store", "lease", "audit", "envfile", "killswitch", "rotate", "supervisor", "redact", "mcp", "policy"},
}

// mainMay are the only packages of ours that package main imports: it reaches the core
// through vault, and besides speaks MCP's wire format, parses durations and policy rules,
// starts the sandbox's side of a re-exec, and sets up and routes to a guarded store.
var mainMay = []string{"vault", "mcp", "internal/duration", "policy", "internal/sandbox", "guard"}

// TestDependencyArrows reads `go list -deps` and fails on any arrow DESIGN.md section 2
// forbids.
func TestDependencyArrows(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		pkg, imports, deps := ours(parts[0]), strings.Fields(parts[1]), strings.Fields(parts[2])
		if pkg == "" {
			seen++
			for _, imp := range imports {
				if p := ours(imp); strings.HasPrefix(imp, module) && !slices.Contains(mainMay, p) {
					t.Errorf("package main imports %s; it reaches the core only through vault", p)
				}
			}
			continue
		}
		for _, dep := range deps {
			if strings.HasPrefix(dep, "github.com/urfave/cli") {
				t.Errorf("%s depends on %s: only package main knows the CLI library", pkg, dep)
			}
			if !strings.HasPrefix(dep, module+"/") {
				continue
			}
			d := ours(dep)
			if d == "vault" {
				t.Errorf("%s depends on vault: only package main calls it", pkg)
			}
			if slices.Contains(forbidden[pkg], d) {
				t.Errorf("%s depends on %s, which DESIGN.md section 2 forbids", pkg, d)
			}
		}
		if _, ok := forbidden[pkg]; ok {
			seen++
		}
	}
	if seen != len(forbidden)+1 {
		t.Fatalf("go list showed %d of the %d packages the rules name", seen, len(forbidden)+1)
	}
}

// ours returns a package path relative to the module: "" for the module's root (main).
func ours(path string) string {
	return strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
}
