package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// Ids are compared by exact value and type: the attacker's review cancelled a call with
// the id 2^53+1 by naming 2^53, which float64 makes one number.
func TestIDKey(t *testing.T) {
	same := [][2]string{{`1`, `1.0`}, {`1`, `1e0`}, {`"a"`, `"a"`}, {`-0`, `0`}}
	for _, p := range same {
		if idKey(json.RawMessage(p[0])) != idKey(json.RawMessage(p[1])) {
			t.Errorf("%s and %s should be one id", p[0], p[1])
		}
	}
	differ := [][2]string{{`9007199254740992`, `9007199254740993`}, {`1`, `"1"`}, {`1`, `1.5`}}
	for _, p := range differ {
		if idKey(json.RawMessage(p[0])) == idKey(json.RawMessage(p[1])) {
			t.Errorf("%s and %s should be two ids", p[0], p[1])
		}
	}
	for _, bad := range []string{`null`, `{"a":1}`, `[1]`, `true`} {
		if idKey(json.RawMessage(bad)) != "" {
			t.Errorf("%s should not be an id", bad)
		}
	}
}

// A message of exactly MaxMessage bytes is read, whatever its line ending; one byte more
// is skipped with an error.
func TestMessageLimit(t *testing.T) {
	ping := func(n int) string {
		head := `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"`
		tail := `"}}`
		return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
	}
	for _, tc := range []struct {
		in   string
		code float64 // 0: answered
	}{
		{ping(MaxMessage) + "\n", 0},
		{ping(MaxMessage) + "\r\n", 0},
		{ping(MaxMessage), 0},
		{ping(MaxMessage+1) + "\n", InvalidRequest},
	} {
		var out bytes.Buffer
		s := &Server{Name: "t"}
		if err := s.Serve(context.Background(), strings.NewReader(tc.in), &out); err != nil {
			t.Fatal(err)
		}
		var resp struct {
			Error *rpcError `json:"error"`
		}
		json.Unmarshal(out.Bytes(), &resp)
		switch {
		case tc.code == 0 && resp.Error != nil:
			t.Errorf("%d bytes: %v", len(tc.in), resp.Error)
		case tc.code != 0 && (resp.Error == nil || float64(resp.Error.Code) != tc.code):
			t.Errorf("%d bytes: %s", len(tc.in), out.String())
		}
	}
}

// A write that fails (the client closed our stdout) cancels the calls still running and
// ends Serve with the error.
func TestBrokenOutputCancelsCalls(t *testing.T) {
	stopped := make(chan struct{})
	s := &Server{Name: "t", Tools: []Tool{{Name: "wait", Call: func(ctx context.Context, _ string, _ json.RawMessage) (any, bool) {
		<-ctx.Done()
		close(stopped)
		return map[string]any{}, false
	}}}}
	r, w := io.Pipe()
	go func() {
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"wait"}}`+"\n")
		io.WriteString(w, `{"jsonrpc":"2.0","id":2,"method":"ping"}`+"\n")
	}()
	err := s.Serve(context.Background(), r, failing{})
	if err == nil {
		t.Fatal("Serve ended without the write error")
	}
	select {
	case <-stopped:
	default:
		t.Fatal("the running call was not cancelled")
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
