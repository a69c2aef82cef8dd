package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSkillCommandsRun runs every bash block of the agent skill, in order, as one bash
// session against the real binary, so the skill cannot drift from the CLI. gh, curl and
// npm are stubs that check their credential arrived. The transcript must not hold a value.
func TestSkillCommandsRun(t *testing.T) {
	doc, err := os.ReadFile("skills/secret-management/SKILL.md")
	if err != nil {
		t.Fatal(err)
	}
	front := regexp.MustCompile(`(?s)\A---\nname: secret-management\ndescription: [^\n]{40,}\n---\n`)
	if !front.Match(doc) {
		t.Fatal("SKILL.md needs front matter with name and description")
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```bash\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) < 6 {
		t.Fatalf("only %d bash blocks", len(blocks))
	}

	bin := secretsBinary(t)
	work := t.TempDir()
	stubs := filepath.Join(work, "bin")
	os.Mkdir(stubs, 0o755)
	os.Symlink(bin, filepath.Join(stubs, "secrets"))
	for name, need := range map[string]string{"gh": "GITHUB_TOKEN", "curl": "GITHUB_TOKEN", "npm": "ANTHROPIC_API_KEY"} {
		script := "#!/bin/sh\ntest -n \"$" + need + "\" || { echo '" + name + ": no " + need + "' >&2; exit 1; }\necho '" + name + " ran'\n"
		os.WriteFile(filepath.Join(stubs, name), []byte(script), 0o755)
	}
	project := filepath.Join(work, "project")
	os.Mkdir(project, 0o755)
	env := []string{"PATH=" + stubs + ":" + os.Getenv("PATH"), "HOME=" + work, "SECRETS_DIR=" + filepath.Join(work, "store"), "GORACE=atexit_sleep_ms=0"}
	setup := exec.Command("sh", "-c", `secrets init >/dev/null && echo FAKE-skill-gh-0001 | secrets add github_token >/dev/null && echo FAKE-skill-anthropic-0001 | secrets add anthropic_key >/dev/null`)
	setup.Env = env
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}

	cmd := exec.Command("bash", "-euo", "pipefail", "-c", strings.Join(blocks, "\n"))
	cmd.Env, cmd.Dir = env, project
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("a command in SKILL.md failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"name": "github_token"`, "gh ran", "npm ran", "curl ran", `"leases_revoked"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if strings.Contains(string(out), "FAKE-skill") {
		t.Fatalf("a value reached the transcript:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(project, ".env")); !os.IsNotExist(err) {
		t.Error("the skill's workflow left .env behind")
	}
}
