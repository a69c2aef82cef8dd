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
	"slices"
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

// MaxMessage bounds one incoming message.
const MaxMessage = 4 << 20

// Serve reads requests from r and writes responses to w until r ends or ctx is done.
// Requests are answered one at a time, in order.
func (s *Server) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	in := bufio.NewScanner(r)
	in.Buffer(make([]byte, 64<<10), MaxMessage)
	out := json.NewEncoder(w)
	out.SetEscapeHTML(false)
	for in.Scan() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		line := bytes.TrimSpace(in.Bytes())
		if len(line) == 0 {
			continue
		}
		if resp := s.handle(ctx, line); resp != nil {
			if err := out.Encode(resp); err != nil {
				return err
			}
		}
	}
	if err := in.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// handle answers one message; notifications get no answer.
func (s *Server) handle(ctx context.Context, line []byte) *response {
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		if len(line) > 0 && line[0] == '[' {
			return fail(json.RawMessage("null"), InvalidRequest, "batches are not supported")
		}
		return fail(json.RawMessage("null"), ParseError, "parse error: "+err.Error())
	}
	notification := len(req.ID) == 0
	if req.JSONRPC != "2.0" || req.Method == "" {
		if notification {
			return nil
		}
		return fail(req.ID, InvalidRequest, `want {"jsonrpc":"2.0","method":…}`)
	}
	if notification {
		return nil // notifications/initialized, notifications/cancelled: nothing to answer
	}
	result, code, msg := s.dispatch(ctx, req)
	if code != 0 {
		return fail(req.ID, code, msg)
	}
	return &response{JSONRPC: "2.0", ID: req.ID, Result: result}
}

func fail(id json.RawMessage, code int, msg string) *response {
	return &response{JSONRPC: "2.0", ID: id, Error: &rpcError{Code: code, Message: msg}}
}

func (s *Server) dispatch(ctx context.Context, req request) (any, int, string) {
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
	case "tools/call":
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
		result, isError := s.Tools[i].Call(ctx, s.client, p.Arguments)
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
	return nil, MethodNotFound, fmt.Sprintf("method %q not found", req.Method)
}
