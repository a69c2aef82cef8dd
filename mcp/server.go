// Package mcp is a small Model Context Protocol server: JSON-RPC 2.0 over newline-
// delimited stdio, with initialize (protocol version negotiation), ping, tools/list and
// tools/call. It is written here rather than taken from the official SDK because the SDK
// would add about 4 ms to the start-up of every secrets command; the SDKs are used as the
// test clients that prove it conforms.
package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"sync"
)

// Versions are the protocol versions this server speaks, newest first.
var Versions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

// JSON-RPC error codes.
const (
	ParseError     = -32700
	InvalidRequest = -32600
	MethodNotFound = -32601
	InvalidParams  = -32602
	InternalError  = -32603
)

// Tool is one tool: its schema and what calling it does.
type Tool struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	InputSchema map[string]any `json:"inputSchema"`
	// Call runs the tool for the named client. It returns the structured result and
	// whether it is a tool error (reported to the model, not as a protocol error).
	Call func(ctx context.Context, client string, args json.RawMessage) (result any, isError bool) `json:"-"`
}

// Server answers one client on one stream.
type Server struct {
	Name, Version, Instructions string
	Tools                       []Tool

	client string // clientInfo.name from initialize
}

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// MaxMessage bounds one incoming message. A longer one is answered with an error and
// skipped; the server goes on.
const MaxMessage = 4 << 20

// MaxCalls bounds the tool calls served at once; one more is refused with ServerBusy.
// Everything else (ping, tools/list) is answered at once, whatever is running.
const MaxCalls = 8

// ServerBusy is the JSON-RPC error of a tool call beyond MaxCalls (an implementation-
// defined server error).
const ServerBusy = -32000

// Serve reads requests from r and writes responses to w until r ends or ctx is done.
// Tool calls are served side by side, at most MaxCalls at a time, each with a context
// that notifications/cancelled for its id cancels (it is then not answered). When r
// ends, the calls still running are answered before Serve returns (the way a client
// shuts a stdio server down: close its input, wait, then SIGTERM). When ctx is done
// (SIGTERM), they are cancelled, which stops what they started, and waited for; Serve
// then returns nil, a clean end. When w fails (the client is gone), they are cancelled
// too and Serve returns the error.
func (s *Server) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	out := &writer{enc: json.NewEncoder(w), broken: make(chan struct{})}
	out.enc.SetEscapeHTML(false)
	msgs, stop := make(chan message), make(chan struct{})
	defer close(stop)
	go read(r, msgs, stop)
	calls := &inFlight{cancel: map[string]context.CancelFunc{}}
	defer func() {
		// The calls still running end on their own, or, once nobody can read their
		// answers (a write failed, now or while they run), are cancelled, which stops
		// what they started.
		done := make(chan struct{})
		go func() { calls.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-out.broken:
			cancel()
			<-done
		}
		cancel()
	}()
	for {
		var m message
		select {
		case <-ctx.Done():
			return nil // the deferred Wait: each call sees ctx done and stops
		case <-out.broken:
			return out.failed()
		case m = <-msgs:
		}
		switch {
		case m.err != nil:
			if errors.Is(m.err, io.EOF) {
				return out.failed()
			}
			return m.err
		case m.tooLong:
			out.send(fail(json.RawMessage("null"), InvalidRequest, fmt.Sprintf("message longer than %d bytes; it was skipped", MaxMessage)))
			continue
		}
		line := bytes.TrimSpace(m.line)
		if len(line) == 0 {
			continue
		}
		if err := s.handle(ctx, line, out, calls); err != nil {
			return err
		}
	}
}

// message is one line read, or why reading stopped.
type message struct {
	line    []byte
	tooLong bool
	err     error
}

// read sends each line of r to msgs, and then the error that ended it, until stop is
// closed. A line longer than MaxMessage (its line ending not counted) is read to its
// end, kept no longer than that, and sent as tooLong.
func read(r io.Reader, msgs chan<- message, stop <-chan struct{}) {
	in := bufio.NewReaderSize(r, 64<<10)
	send := func(m message) bool {
		select {
		case msgs <- m:
			return true
		case <-stop:
			return false
		}
	}
	for {
		var line []byte
		tooLong := false
		for {
			part, err := in.ReadSlice('\n')
			if !tooLong {
				if len(line)+len(part) > MaxMessage+len("\r\n") {
					tooLong, line = true, nil
				} else {
					line = append(line, part...)
				}
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if !tooLong && len(bytes.TrimRight(line, "\r\n")) > MaxMessage {
				tooLong, line = true, nil
			}
			if err != nil {
				if (len(line) > 0 || tooLong) && !send(message{line: line, tooLong: tooLong}) {
					return
				}
				send(message{err: err})
				return
			}
			break
		}
		if !send(message{line: line, tooLong: tooLong}) {
			return
		}
	}
}

// writer writes one message at a time; broken is closed when a write fails.
type writer struct {
	mu     sync.Mutex
	enc    *json.Encoder
	err    error
	broken chan struct{}
}

func (w *writer) send(resp *response) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		if w.err = w.enc.Encode(resp); w.err != nil {
			close(w.broken)
		}
	}
}

// inFlight are the tool calls running, by id.
type inFlight struct {
	mu     sync.Mutex
	cancel map[string]context.CancelFunc
	wg     sync.WaitGroup
}

// errCancelled is the cause of a call the client cancelled.
var errCancelled = errors.New("the client cancelled the request")

// handle answers one message: at once, or, for a tool call, from a goroutine of its own.
// Notifications get no answer; notifications/cancelled cancels the call it names. The
// error is the output's, which ends the server.
func (s *Server) handle(ctx context.Context, line []byte, out *writer, calls *inFlight) error {
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		if len(line) > 0 && line[0] == '[' {
			out.send(fail(json.RawMessage("null"), InvalidRequest, "batches are not supported"))
		} else {
			out.send(fail(json.RawMessage("null"), ParseError, "parse error: "+err.Error()))
		}
		return out.failed()
	}
	notification := len(req.ID) == 0
	if req.JSONRPC != "2.0" || req.Method == "" {
		if !notification {
			out.send(fail(req.ID, InvalidRequest, `want {"jsonrpc":"2.0","method":…}`))
		}
		return out.failed()
	}
	if notification {
		if req.Method == "notifications/cancelled" {
			var p struct {
				RequestID json.RawMessage `json:"requestId"`
			}
			if json.Unmarshal(req.Params, &p) == nil && len(p.RequestID) > 0 {
				calls.mu.Lock()
				if cancel, ok := calls.cancel[idKey(p.RequestID)]; ok {
					cancel()
				}
				calls.mu.Unlock()
			}
		}
		return nil // notifications/initialized and the rest: nothing to answer
	}
	key := idKey(req.ID)
	if key == "" {
		out.send(fail(json.RawMessage("null"), InvalidRequest, "a request's id must be a string or a number"))
		return out.failed()
	}
	if req.Method != "tools/call" {
		result, code, msg := s.dispatch(req)
		if code != 0 {
			out.send(fail(req.ID, code, msg))
		} else {
			out.send(&response{JSONRPC: "2.0", ID: req.ID, Result: result})
		}
		return out.failed()
	}
	calls.mu.Lock()
	if _, dup := calls.cancel[key]; dup {
		calls.mu.Unlock()
		out.send(fail(req.ID, InvalidRequest, "a request with this id is still running"))
		return out.failed()
	}
	if len(calls.cancel) >= MaxCalls {
		calls.mu.Unlock()
		out.send(fail(req.ID, ServerBusy, fmt.Sprintf("%d tool calls are running, the most this server serves at once; retry when one returns", MaxCalls)))
		return out.failed()
	}
	callCtx, cancel := context.WithCancelCause(ctx)
	calls.cancel[key] = func() { cancel(errCancelled) }
	calls.wg.Add(1)
	calls.mu.Unlock()
	client := s.client
	go func() {
		defer calls.wg.Done()
		result, code, msg := s.call(callCtx, client, req)
		calls.mu.Lock()
		delete(calls.cancel, key)
		calls.mu.Unlock()
		if errors.Is(context.Cause(callCtx), errCancelled) {
			return // a cancelled request is not answered
		}
		cancel(nil)
		if code != 0 {
			out.send(fail(req.ID, code, msg))
		} else {
			out.send(&response{JSONRPC: "2.0", ID: req.ID, Result: result})
		}
	}()
	return nil
}

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// idKey is a request id as a map key, or "" for an id MCP does not allow (null, an
// object, an array, a boolean). Strings and numbers never share a key; numbers are
// compared by exact value (1, 1.0 and 1e0 are one id; 2^53 and 2^53+1 are two).
func idKey(id json.RawMessage) string {
	dec := json.NewDecoder(bytes.NewReader(id))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return ""
	}
	switch v := v.(type) {
	case string:
		return "s" + v
	case json.Number:
		r, ok := new(big.Rat).SetString(v.String())
		if !ok {
			return ""
		}
		return "n" + r.RatString()
	}
	return ""
}

func fail(id json.RawMessage, code int, msg string) *response {
	return &response{JSONRPC: "2.0", ID: id, Error: &rpcError{Code: code, Message: msg}}
}

// dispatch answers a request other than a tool call.
func (s *Server) dispatch(req request) (any, int, string) {
	switch req.Method {
	case "initialize":
		var p struct {
			ProtocolVersion string `json:"protocolVersion"`
			ClientInfo      struct {
				Name string `json:"name"`
			} `json:"clientInfo"`
		}
		if err := json.Unmarshal(req.Params, &p); err != nil || p.ProtocolVersion == "" {
			return nil, InvalidParams, "initialize needs protocolVersion"
		}
		version := Versions[0]
		if slices.Contains(Versions, p.ProtocolVersion) {
			version = p.ProtocolVersion
		}
		s.client = p.ClientInfo.Name
		return map[string]any{
			"protocolVersion": version,
			"capabilities":    map[string]any{"tools": map[string]any{"listChanged": false}},
			"serverInfo":      map[string]any{"name": s.Name, "version": s.Version},
			"instructions":    s.Instructions,
		}, 0, ""
	case "ping":
		return map[string]any{}, 0, ""
	case "tools/list":
		return map[string]any{"tools": s.Tools}, 0, ""
	}
	return nil, MethodNotFound, fmt.Sprintf("method %q not found", req.Method)
}

// call runs a tool for client.
func (s *Server) call(ctx context.Context, client string, req request) (any, int, string) {
	var p struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(req.Params, &p); err != nil || p.Name == "" {
		return nil, InvalidParams, "tools/call needs a tool name"
	}
	i := slices.IndexFunc(s.Tools, func(t Tool) bool { return t.Name == p.Name })
	if i < 0 {
		return nil, InvalidParams, fmt.Sprintf("unknown tool %q", p.Name)
	}
	if len(p.Arguments) == 0 || string(p.Arguments) == "null" {
		p.Arguments = json.RawMessage("{}")
	}
	result, isError := s.Tools[i].Call(ctx, client, p.Arguments)
	text, err := json.MarshalIndent(result, "", "  ")
	if err != nil {
		return nil, InternalError, err.Error()
	}
	out := map[string]any{
		"content": []map[string]any{{"type": "text", "text": string(text)}},
		"isError": isError,
	}
	if len(text) > 0 && text[0] == '{' {
		out["structuredContent"] = json.RawMessage(text) // structured content is an object
	}
	return out, 0, ""
}
