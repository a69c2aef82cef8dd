//go:build linux

package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpBinary serves `secrets mcp args…` from the built binary on the attack store, with
// the official Go SDK as the client.
func mcpBinary(t *testing.T, s *attackStore, args ...string) *sdk.ClientSession {
	t.Helper()
	return connect(t, s, exec.Command(s.bin, append([]string{"mcp"}, args...)...))
}

func connect(t *testing.T, s *attackStore, cmd *exec.Cmd) *sdk.ClientSession {
	t.Helper()
	cmd.Env = s.env
	cmd.Stderr = os.Stderr
	client := sdk.NewClient(&sdk.Implementation{Name: "load-agent", Version: "1.0"}, nil)
	cs, err := client.Connect(context.Background(), &sdk.CommandTransport{Command: cmd, TerminateDuration: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}
