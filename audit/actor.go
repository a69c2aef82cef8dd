package audit

import (
	"os"
	"strconv"
	"strings"
)

// Actor says who made a call: the process, its parent, the user, the working directory and,
// when the environment shows one, the agent host it runs under.
type Actor struct {
	PID    int    `json:"pid"`
	PPID   int    `json:"ppid"`
	Parent string `json:"parent"`
	UID    int    `json:"uid"`
	CWD    string `json:"cwd"`
	Agent  string `json:"agent,omitempty"`
}

// Self describes the calling process. environ is consulted for the agent host only.
func Self(environ []string) Actor {
	a := Actor{PID: os.Getpid(), PPID: os.Getppid(), UID: os.Getuid(), Agent: DetectAgent(environ)}
	a.Parent = ProcessName(a.PPID)
	a.CWD, _ = os.Getwd()
	return a
}

// ProcessName returns the command name of pid from /proc, or "unknown" where it cannot be read.
func ProcessName(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "unknown"
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		return s
	}
	return "unknown"
}

// agentMarkers maps an environment variable (or a prefix ending in "_") that an agent
// host sets in the shells it runs to the name recorded as actor.agent.
var agentMarkers = []struct{ key, agent string }{
	{"CLAUDECODE", "claude-code"},
	{"CODEX_", "codex"},
	{"CURSOR_", "cursor"},
	{"GEMINI_CLI", "gemini-cli"},
	{"OPENCLAW_", "openclaw"},
}

// DetectAgent names the agent host the environment shows, or "". AI_AGENT, when set,
// is taken as the agent's own name and wins.
func DetectAgent(environ []string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "AI_AGENT="); ok && v != "" {
			return v[:min(len(v), 64)]
		}
	}
	for _, m := range agentMarkers {
		for _, kv := range environ {
			k, v, _ := strings.Cut(kv, "=")
			if v == "" {
				continue
			}
			if k == m.key || strings.HasSuffix(m.key, "_") && strings.HasPrefix(k, m.key) {
				return m.agent
			}
		}
	}
	return ""
}
