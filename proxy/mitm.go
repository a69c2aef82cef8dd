package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/redact"
)

// hopHeaders are the headers of one hop, which a proxy does not forward (RFC 9110 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// found is where a request carries a placeholder.
type found struct {
	s     *Secret
	where []string // `header "NAME"`, "basic username", "basic password", `query "NAME"`, "url"
}

// locate finds every placeholder in the request's headers and URL. Bodies are not
// searched: nothing is ever put into a body, so a placeholder there stays one.
func (p *Proxy) locate(r *http.Request) []found {
	var out []found
	for i := range p.cfg.Secrets {
		s := &p.cfg.Secrets[i]
		var where []string
		for name, vals := range r.Header {
			for _, v := range vals {
				if strings.Contains(v, s.Placeholder) {
					where = append(where, "header "+strconv.Quote(name))
				}
				if user, pass, ok := basic(name, v); ok {
					if strings.Contains(user, s.Placeholder) {
						where = append(where, "basic username")
					}
					if strings.Contains(pass, s.Placeholder) {
						where = append(where, "basic password")
					}
				}
			}
		}
		if q := r.URL.RawQuery; strings.Contains(q, s.Placeholder) {
			for _, kv := range strings.Split(q, "&") {
				k, v, _ := strings.Cut(kv, "=")
				if strings.Contains(v, s.Placeholder) {
					name, err := url.QueryUnescape(k)
					if err != nil {
						name = k
					}
					where = append(where, "query "+strconv.Quote(name))
				}
			}
		}
		if strings.Contains(r.URL.EscapedPath(), s.Placeholder) || r.URL.User != nil && strings.Contains(r.URL.User.String(), s.Placeholder) {
			where = append(where, "url")
		}
		if len(where) > 0 {
			out = append(out, found{s: s, where: where})
		}
	}
	return out
}

// basic decodes an Authorization header's Basic credentials.
func basic(name, v string) (user, pass string, ok bool) {
	if !strings.EqualFold(name, "Authorization") {
		return "", "", false
	}
	scheme, cred, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	return user, pass, ok
}

// ruleWhere is the placeholder location a secret's rule gives the value to.
func ruleWhere(s *Secret) []string {
	r := s.Rule
	switch {
	case r.Basic != "":
		return []string{"basic " + r.Basic}
	case r.Query != "":
		return []string{"query " + strconv.Quote(r.Query)}
	case r.Format == "" && strings.EqualFold(r.HeaderName(), "Authorization"):
		// Without a format the child's own scheme is kept, Basic included.
		return []string{`header "Authorization"`, "basic username", "basic password"}
	}
	return []string{"header " + strconv.Quote(http.CanonicalHeaderKey(r.HeaderName()))}
}

// serveHTTP is a request the child sent to a rule's host through the tunnel.
func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	t, _ := r.Context().Value(targetKey{}).(*target)
	if t == nil {
		http.Error(w, "secrets: no target", http.StatusInternalServerError)
		return
	}
	// The request goes to the CONNECT target and nowhere else, whatever it names.
	if host, port, err := splitTarget(r.Host, 443); err != nil || host != t.host || port != t.port {
		http.Error(w, "secrets: this connection is for "+t.authority(), http.StatusMisdirectedRequest)
		return
	}
	if why := p.gate.admit(p.cfg.Now); why != "" {
		name := t.secrets[0].Name
		p.count("refuse", name, t.authority())
		p.cfg.Event(Event{Kind: "inject_refused", Secret: name, Host: t.authority(), Why: why, Class: "refused"})
		http.Error(w, fmt.Sprintf("secrets: %s is no longer injected here: %s", name, why), http.StatusForbidden)
		return
	}
	// Stop ends what is under way too: a stream or a long poll opened with the value.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(p.stopped, cancel)()
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host, out.Host = "https", t.authority(), t.authority()
	ws := isWebSocket(r)
	trailers := strings.EqualFold(strings.TrimSpace(r.Header.Get("Te")), "trailers") // gRPC's, which it needs upstream
	// Every header a Connection line names is this hop's, on every such line.
	for _, line := range r.Header.Values("Connection") {
		for _, h := range strings.Split(line, ",") {
			if h = strings.TrimSpace(h); h != "" {
				out.Header.Del(h)
			}
		}
	}
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Header.Del("Http2-Settings") // an h2c upgrade is never passed on
	if trailers {
		out.Header.Set("Te", "trailers")
	}
	if ws {
		// Exactly a WebSocket's upgrade, whatever else the child's lines said.
		out.Header.Set("Connection", "Upgrade")
		out.Header.Set("Upgrade", "websocket")
	}
	// The transport asks for gzip and decodes it: what comes back can be scrubbed. A
	// range would cut a value into pieces no scrubber recognises: the whole is asked
	// for. A WebSocket's frames stay uncompressed, so that they can be scrubbed too.
	out.Header.Del("Accept-Encoding")
	out.Header.Del("Range")
	out.Header.Del("If-Range")
	out.Header.Del("Sec-Websocket-Extensions")
	var injected []*Secret
	for _, f := range p.locate(r) {
		ok := false
		for _, c := range t.secrets {
			ok = ok || c == f.s
		}
		// A path a server would normalise (/repos/../user) is not the path the rule
		// names: with paths in the rule, only a canonical one gets the value.
		ok = ok && f.s.Rule.MatchRequest(r.Method, r.URL.Path) && (len(f.s.Rule.Paths) == 0 || canonical(r.URL))
		want := ruleWhere(f.s)
		var outside []string
		hit := false
		for _, w := range f.where {
			if ok && contains(want, w) {
				hit = true
			} else {
				outside = append(outside, w)
			}
		}
		if len(outside) > 0 {
			why := fmt.Sprintf("sent in the %s, which its rule does not give the value to (method %q)", strings.Join(outside, ", "), r.Method)
			p.count("refuse", f.s.Name, t.authority())
			p.cfg.Event(Event{Kind: "inject_blocked", Secret: f.s.Name, Host: t.authority(), Why: why, Class: shapes(outside)})
			if p.cfg.Strict {
				http.Error(w, "secrets: the placeholder of "+f.s.Name+" was "+why, http.StatusForbidden)
				return
			}
		}
		if hit {
			inject(out, f.s)
			injected = append(injected, f.s)
		}
	}
	tr, err := p.transport(t, r.ProtoMajor == 2)
	if err != nil {
		http.Error(w, "secrets: "+err.Error(), http.StatusBadGateway)
		return
	}
	resp, err := tr.RoundTrip(out)
	if err != nil {
		// A url.Error names the URL, which may carry the value in its query.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		http.Error(w, fmt.Sprintf("secrets: %s: %s", t.authority(), p.scrubString(err.Error())), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, s := range injected {
		p.count("inject", s.Name, t.authority())
	}
	for _, v := range resp.Header.Values("Content-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			if enc = strings.TrimSpace(enc); enc != "" && !strings.EqualFold(enc, "identity") {
				http.Error(w, fmt.Sprintf("secrets: %s answered in the %s encoding, which the proxy cannot scrub of the value", t.authority(), p.scrubString(enc)), http.StatusBadGateway)
				return
			}
		}
	}
	if resp.StatusCode == http.StatusPartialContent {
		http.Error(w, "secrets: "+t.authority()+" answered with part of a body, which the proxy cannot scrub of the value", http.StatusBadGateway)
		return
	}
	for k, vs := range resp.Header {
		if p.namedByValue(k) {
			continue // a header named by the value goes nowhere
		}
		for _, v := range vs {
			w.Header().Add(k, p.scrubString(v))
		}
	}
	if r.Method != http.MethodHead && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified {
		w.Header().Del("Content-Length") // scrubbing may change it
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if !ws || !strings.EqualFold(strings.TrimSpace(resp.Header.Get("Upgrade")), "websocket") || len(resp.Header.Values("Upgrade")) != 1 {
			http.Error(w, "secrets: "+t.authority()+" switched to a protocol other than a WebSocket, which the proxy does not pass on", http.StatusBadGateway)
			return
		}
		p.upgrade(w, resp)
		return
	}
	for k := range resp.Trailer {
		if !p.namedByValue(k) {
			w.Header().Add("Trailer", k)
		}
	}
	w.WriteHeader(resp.StatusCode)
	// A stream (no length, or server-sent events) reaches the child as it comes, as
	// httputil.ReverseProxy sends it; a body of known length goes in as few writes as
	// the server's.
	var dst io.Writer = w
	if resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		dst = flusher{w}
	}
	sw := p.scrub.Writer(dst)
	io.Copy(sw, resp.Body)
	sw.Close()
	for k, vs := range resp.Trailer { // known once the body is read: gRPC's status
		if p.namedByValue(k) {
			continue
		}
		for _, v := range vs {
			w.Header().Add(k, p.scrubString(v))
		}
	}
}

// shapes are the kinds of place of where (header, query, basic, url), without the names.
func shapes(where []string) string {
	var out []string
	for _, w := range where {
		kind, _, _ := strings.Cut(w, " ")
		if !slices.Contains(out, kind) {
			out = append(out, kind)
		}
	}
	slices.Sort(out)
	return strings.Join(out, "+")
}

// canonical reports whether u's path is one no server normalises into another: no "."
// or ".." segment, no empty segment, no encoded dot, slash, backslash or percent, no
// encoded byte past ASCII.
func canonical(u *url.URL) bool {
	raw := u.EscapedPath()
	lower := strings.ToLower(raw)
	if strings.Contains(lower, "%2e") || strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.ContainsAny(raw, "\\;") {
		return false
	}
	// Nor a double encoding (%252e) or an encoded byte past ASCII (an overlong or
	// full-width dot), which an upstream that decodes twice or folds Unicode could read
	// as one.
	for i := 0; i+2 < len(lower); i++ {
		if lower[i] == '%' && (lower[i+1:i+3] == "25" || lower[i+1] >= '8') { // %8x-%fx are past ASCII
			return false
		}
	}
	for i, seg := range strings.Split(raw, "/") {
		if seg == "." || seg == ".." || seg == "" && i > 0 && i < strings.Count(raw, "/") {
			return false
		}
	}
	return strings.HasPrefix(raw, "/")
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if strings.EqualFold(y, x) {
			return true
		}
	}
	return false
}

// isWebSocket reports whether r asks to upgrade to a WebSocket and to nothing else.
func isWebSocket(r *http.Request) bool {
	ups := r.Header.Values("Upgrade")
	return r.ProtoMajor == 1 && len(ups) == 1 && strings.EqualFold(strings.TrimSpace(ups[0]), "websocket")
}

// inject puts s's value where its rule says, in place of its placeholder.
func inject(out *http.Request, s *Secret) {
	r, ph, val := s.Rule, s.Placeholder, string(s.Value)
	switch {
	case r.Query != "":
		parts := strings.Split(out.URL.RawQuery, "&")
		for i, kv := range parts {
			k, v, ok := strings.Cut(kv, "=")
			if name, err := url.QueryUnescape(k); ok && err == nil && name == r.Query && strings.Contains(v, ph) {
				parts[i] = k + "=" + strings.ReplaceAll(v, ph, url.QueryEscape(val))
			}
		}
		out.URL.RawQuery = strings.Join(parts, "&")
	case r.Basic != "":
		v := out.Header.Get("Authorization")
		if user, pass, ok := basic("Authorization", v); ok {
			if r.Basic == "username" {
				user = strings.ReplaceAll(user, ph, val)
			} else {
				pass = strings.ReplaceAll(pass, ph, val)
			}
			out.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
		}
	default:
		name := r.HeaderName()
		vals := out.Header.Values(name)
		for i, v := range vals {
			if r.Format != "" && strings.Contains(v, ph) {
				vals[i] = strings.Replace(r.Format, "{value}", val, 1)
				continue
			}
			if user, pass, ok := basic(name, v); ok && (strings.Contains(user, ph) || strings.Contains(pass, ph)) {
				cred := strings.ReplaceAll(user, ph, val) + ":" + strings.ReplaceAll(pass, ph, val)
				vals[i] = "Basic " + base64.StdEncoding.EncodeToString([]byte(cred))
				continue
			}
			vals[i] = strings.ReplaceAll(v, ph, val)
		}
	}
}

// scrubs are the values to take out of what comes back: each shown as its placeholder,
// its encodings as [REDACTED:NAME].
func scrubs(secrets []Secret) *redact.Set {
	out := make([]redact.Secret, 0, len(secrets))
	for _, s := range secrets {
		if s.Value != nil {
			out = append(out, redact.Secret{Name: s.Name, Value: s.Value, Shown: []byte(s.Placeholder)})
		}
	}
	set, _ := redact.Compile(out)
	return set
}

// namedByValue reports whether a header's name holds a value: names reach us in
// canonical case (X-Ghp_fake…), so case is ignored, for the value and its hex.
func (p *Proxy) namedByValue(name string) bool {
	if p.scrubString(name) != name {
		return true
	}
	lower := strings.ToLower(name)
	for _, s := range p.cfg.Secrets {
		if len(s.Value) >= redact.MinLen && (strings.Contains(lower, strings.ToLower(string(s.Value))) || strings.Contains(lower, hex.EncodeToString(s.Value))) {
			return true
		}
	}
	return false
}

func (p *Proxy) scrubString(s string) string {
	if !p.scrub.Maybe(s) {
		return s
	}
	var b strings.Builder
	w := p.scrub.Writer(&b)
	io.WriteString(w, s)
	w.Close()
	return b.String()
}

// flusher sends each write on at once: a stream of events reaches the child as it comes.
type flusher struct{ w http.ResponseWriter }

func (f flusher) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

// upgrade passes a WebSocket through once upstream has switched protocols. Its frames
// are not scrubbed (the README says so): only the handshake was.
func (p *Proxy) upgrade(w http.ResponseWriter, resp *http.Response) {
	up, ok := resp.Body.(io.ReadWriteCloser)
	if ok {
		defer up.Close()
	}
	hj, hok := w.(http.Hijacker)
	if !ok || !hok {
		http.Error(w, "secrets: the upgrade could not be passed through", http.StatusBadGateway)
		return
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	// The 101 is written here, after the hijack: the server would not send it.
	resp.Header = w.Header()
	resp.Body = http.NoBody
	resp.ContentLength = -1
	if err := resp.Write(brw); err != nil || brw.Flush() != nil {
		c.Close()
		return
	}
	if !p.track(c) {
		c.Close()
		return
	}
	defer func() { p.untrack(c); c.Close() }()
	p.mu.Lock()
	p.upgraded[c] = true
	p.mu.Unlock()
	defer func() { p.mu.Lock(); delete(p.upgraded, c); p.mu.Unlock() }()
	if p.gate.admit(p.cfg.Now) != "" { // stopped while it was switching
		return
	}
	done := make(chan struct{})
	go func() { io.Copy(up, brw.Reader); up.Close(); close(done) }()
	// What the server sends is scrubbed as a byte stream: a value inside one
	// uncompressed frame is caught (the placeholder is as long as the value, so the frame
	// stays whole); one split across frames is not.
	sw := p.scrub.Writer(c)
	io.Copy(sw, up)
	sw.Close()
	c.Close()
	<-done
}

// plain serves a plain http:// request: nothing is ever injected into one. It reports
// whether the connection may carry another request.
func (p *Proxy) plain(c net.Conn, req *http.Request) bool {
	if req.URL.Scheme != "http" || req.URL.Host == "" {
		reply(c, http.StatusBadRequest, "secrets: a proxy request names an http:// URL, or is a CONNECT", nil)
		return false
	}
	host, port, err := splitTarget(req.URL.Host, 80)
	if err != nil {
		reply(c, http.StatusBadRequest, "secrets: "+err.Error(), nil)
		return false
	}
	authority := "http://" + net.JoinHostPort(host, fmt.Sprint(port))
	for _, f := range p.locate(req) {
		p.cfg.Event(Event{Kind: "inject_blocked", Secret: f.s.Name, Host: authority, Why: "sent over plain http, into which no value is ever injected", Class: "plain http"})
	}
	if p.cfg.Strict || p.cfg.Only {
		p.refuse(c, "egress_denied", "", authority, "strict egress: plain http to "+authority+" is refused")
		return false
	}
	req.RequestURI = ""
	for _, h := range hopHeaders {
		req.Header.Del(h)
	}
	p.mu.Lock()
	if p.plainTr == nil {
		p.plainTr = &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext, MaxIdleConnsPerHost: 8}
	}
	tr := p.plainTr
	p.mu.Unlock()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		reply(c, http.StatusBadGateway, fmt.Sprintf("secrets: could not reach %s", authority), nil)
		return false
	}
	defer resp.Body.Close()
	p.count("tunnel", "", authority)
	keep := !req.Close && !resp.Close
	if !keep {
		resp.Header.Set("Connection", "close")
	}
	bw := bufio.NewWriter(c)
	if err := resp.Write(bw); err != nil {
		return false
	}
	return bw.Flush() == nil && keep
}
