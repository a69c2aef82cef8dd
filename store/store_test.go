package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/agent-secrets/secrets/internal/safefile"
	"github.com/agent-secrets/secrets/store"
)

func newStore(t *testing.T) (store.Options, *store.Store) {
	t.Helper()
	o := store.Options{Dir: filepath.Join(t.TempDir(), "store"), LockTimeout: time.Second}
	s, err := store.Init(context.Background(), store.InitOptions{Options: o})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateStoreKey(); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(store.Commit{State: []byte(`{"version":1,"leases":[]}`), Secrets: store.NewSecrets()}, nil); err != nil {
		t.Fatal(err)
	}
	return o, s
}

func TestInitFilesAndModes(t *testing.T) {
	o, s := newStore(t)
	s.Close()
	for name, mode := range map[string]os.FileMode{
		"": 0o700, store.IdentityFile: 0o600, store.ConfigFile: 0o600, store.SecretsFile: 0o600,
		store.LeasesFile: 0o600, store.LockFile: 0o600,
	} {
		fi, err := os.Stat(filepath.Join(o.Dir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%q: %v %v", name, fi.Mode(), err)
		}
	}
	if _, err := store.Init(context.Background(), store.InitOptions{Options: o}); !errors.Is(err, store.ErrAlreadyInitialized) {
		t.Errorf("second init: %v", err)
	}
}

func TestSecretsRoundTrip(t *testing.T) {
	o, s := newStore(t)
	sec, _ := s.LoadSecrets()
	value := []byte("FAKE\x00binary\xff\nline two\n")
	if _, err := sec.Add("k", value, "gh auth refresh", time.Now()); err != nil {
		t.Fatal(err)
	}
	sec.Generation = 2
	if err := s.Save(store.Commit{Secrets: sec}, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := store.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if k := got.Secrets["k"]; k == nil || !bytes.Equal(k.Value, value) || k.RotateVia != "gh auth refresh" {
		t.Fatalf("got %+v", k)
	}
	if got.Generation != 2 || got.Version != store.SecretsVersion {
		t.Errorf("generation %d version %d", got.Generation, got.Version)
	}
	raw, _ := os.ReadFile(filepath.Join(o.Dir, store.SecretsFile))
	if bytes.Contains(raw, []byte("FAKE")) || !bytes.HasPrefix(raw, []byte("age-encryption.org/v1\n")) {
		t.Error("secrets.age is not an age file hiding the value")
	}
}

func TestSecretRules(t *testing.T) {
	sec := store.NewSecrets()
	now := time.Now()
	for _, bad := range []string{"", "bad name", ".x", "_x", "-x", "a\nb", strings.Repeat("a", 129), "ünï"} {
		if _, err := sec.Add(bad, []byte("v"), "", now); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	for _, good := range []string{"a", "github_token", "team/svc.key-1", strings.Repeat("a", 128), "9lives"} {
		if _, err := sec.Add(good, []byte("v"), "", now); err != nil {
			t.Errorf("name %q: %v", good, err)
		}
	}
	if _, err := sec.Add("a", []byte("v"), "", now); !errors.Is(err, store.ErrSecretExists) {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := sec.Add("e", nil, "", now); !errors.Is(err, store.ErrInvalidValue) {
		t.Errorf("empty: %v", err)
	}
	if _, err := sec.Add("big", make([]byte, store.MaxValueSize+1), "", now); !errors.Is(err, store.ErrInvalidValue) {
		t.Errorf("big: %v", err)
	}
	if _, err := sec.Set("missing", []byte("v"), now); !errors.Is(err, store.ErrSecretNotFound) {
		t.Errorf("set missing: %v", err)
	}
	if err := sec.Remove("missing"); !errors.Is(err, store.ErrSecretNotFound) {
		t.Errorf("remove missing: %v", err)
	}
}

// TestVersion1Migration reads the earlier tool's format and keeps a backup when writing.
func TestVersion1Migration(t *testing.T) {
	o, s := newStore(t)
	v1 := `{"secrets":{"github_token":{"name":"github_token","value":"FAKE-v1-token","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z","rotate_via":"gh auth refresh","last_rotated":"2026-02-01T00:00:00Z"}}}`
	old := writeEncrypted(t, o, store.SecretsFile, v1)

	sec, err := s.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	k := sec.Secrets["github_token"]
	if k == nil || string(k.Value) != "FAKE-v1-token" || k.RotateVia != "gh auth refresh" || k.RotatedAt == nil || k.CreatedAt.Year() != 2026 {
		t.Fatalf("v1 secret read as %+v", k)
	}
	if err := s.Save(store.Commit{Secrets: sec}, nil); err != nil {
		t.Fatal(err)
	}
	if bak, _ := os.ReadFile(filepath.Join(o.Dir, store.SecretsFile+".v1.bak")); !bytes.Equal(bak, old) {
		t.Error("no byte-identical v1 backup")
	}
	again, _ := s.LoadSecrets()
	if again.Version != store.SecretsVersion || string(again.Secrets["github_token"].Value) != "FAKE-v1-token" {
		t.Errorf("after migration: %+v", again)
	}
	s.Close()
}

func TestNewerVersionRefused(t *testing.T) {
	o, s := newStore(t)
	defer s.Close()
	writeEncrypted(t, o, store.SecretsFile, `{"version":3,"secrets":{}}`)
	before, _ := os.ReadFile(filepath.Join(o.Dir, store.SecretsFile))
	if _, err := s.LoadSecrets(); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("secrets.age with a newer version: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(o.Dir, store.SecretsFile)); !bytes.Equal(before, after) {
		t.Error("secrets.age changed")
	}
}

// writeEncrypted writes plaintext as the store file name, encrypted to the store's identity.
func writeEncrypted(t *testing.T, o store.Options, name, plaintext string) []byte {
	t.Helper()
	idText, _ := os.ReadFile(filepath.Join(o.Dir, store.IdentityFile))
	ids, err := age.ParseIdentities(bytes.NewReader(idText))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, ids[0].(*age.X25519Identity).Recipient())
	w.Write([]byte(plaintext))
	w.Close()
	if err := os.WriteFile(filepath.Join(o.Dir, name), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestForeignOwnerRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a file to another user")
	}
	o, s := newStore(t)
	s.Close()
	p := filepath.Join(o.Dir, store.IdentityFile)
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := store.Open(context.Background(), o)
	var pe *safefile.PermError
	if !errors.Is(err, safefile.ErrInsecure) || !errors.As(err, &pe) || pe.Reason != "owner" || !strings.Contains(pe.Fix(), "chown") {
		t.Fatalf("foreign owner: %v", err)
	}
}

// TestRemoveTemps: opening a store removes nothing (a read writes nothing, and a staged
// secrets.age may be rolled forward); RemoveTemps removes this release's temp files and
// those of the releases before it.
func TestRemoveTemps(t *testing.T) {
	o, s := newStore(t)
	s.Close()
	dead := []string{filepath.Join(o.Dir, ".leases.age.secrets-tmp-0123456789"), filepath.Join(o.Dir, ".leases.age.tmp-0123456789ab")}
	for _, p := range dead {
		os.WriteFile(p, []byte("half-written"), 0o600)
	}
	s, err := store.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range dead {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("Open removed %s", p)
		}
	}
	if err := s.RemoveTemps(); err != nil {
		t.Fatal(err)
	}
	for _, p := range dead {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("dead temp file %s left", p)
		}
	}
}

func TestLockTimeout(t *testing.T) {
	o, held := newStore(t)
	defer held.Close()
	o.LockTimeout = 100 * time.Millisecond
	start := time.Now()
	_, err := store.Open(context.Background(), o)
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), ".lock") {
		t.Fatalf("open while locked: %v", err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond || waited > 2*time.Second {
		t.Errorf("waited %v for a 100ms timeout", waited)
	}
	held.Close()
	s, err := store.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open after release: %v", err)
	}
	s.Close()
}

func TestParseConfig(t *testing.T) {
	c, err := store.ParseConfig("config.json", "/d", []byte(`{"max_lease_ttl":"2d","heartbeat":{"failures_before_action":5}}`))
	if err != nil || time.Duration(c.MaxLeaseTTL) != 48*time.Hour || time.Duration(c.DefaultLeaseTTL) != time.Hour || c.Heartbeat.FailuresBeforeAction != 5 || !c.Heartbeat.FailAction.RevokeAll {
		t.Fatalf("%+v %v", c, err)
	}
	for in, want := range map[string]store.Size{`{}`: 8 << 20, `{"audit_rotate_size":0}`: 0, `{"audit_rotate_size":"1MiB"}`: 1 << 20, `{"audit_rotate_size":70000}`: 70000} {
		if c, err := store.ParseConfig("config.json", "/d", []byte(in)); err != nil || c.AuditRotateSize != want {
			t.Errorf("%s: %d %v, want %d", in, c.AuditRotateSize, err, want)
		}
	}
	for in, key := range map[string]string{
		`{"max_lease_ttl":"forever"}`:                    "max_lease_ttl",
		`{"lock_timeout":"0s"}`:                          "lock_timeout",
		`{"heartbeat":{"fail_action":{"wipe":true}}}`:    "heartbeat.fail_action.wipe",
		`{"heartbeat":{"failures_before_action":0}}`:     "heartbeat.failures_before_action",
		`{"heartbeat":{"enabled":true,"url":"ftp://x"}}`: "heartbeat.url",
		`{"heartbeat":"on"}`:                             "heartbeat",
		`{"default_lease_ttl":"48h"}`:                    "default_lease_ttl",
		`{"audit_rotate_size":1000}`:                     "audit_rotate_size",
		`{"audit_rotate_size":"8MB"}`:                    "audit_rotate_size",
		`{"audit_rotate_size":-1}`:                       "audit_rotate_size",
	} {
		_, err := store.ParseConfig("config.json", "/d", []byte(in))
		var ce *store.ConfigError
		if !errors.As(err, &ce) || ce.Key != key || !errors.Is(err, store.ErrInvalidConfig) {
			t.Errorf("%s: %v (key %q), want key %s", in, err, func() string {
				if ce != nil {
					return ce.Key
				}
				return ""
			}(), key)
		}
	}
}

// TestLookupSecret: one secret of many is found by binary search, byte for byte, and an
// unknown name is secret_not_found, with the generation of the file.
func TestLookupSecret(t *testing.T) {
	o, s := newStore(t)
	defer s.Close()
	sec, _ := s.LoadSecrets()
	for i := 0; i < 2000; i++ {
		v := []byte(strings.Repeat(fmt.Sprintf("FAKE-%04d-", i), 1+i%7))
		if i == 1234 {
			v = bytes.Repeat([]byte("FAKE-big-\x00\xff"), 20000) // spans several age chunks
		}
		if _, err := sec.Add(fmt.Sprintf("k%04d", i), v, "", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	sec.Generation = 9
	if err := s.Save(store.Commit{Secrets: sec}, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"k0000", "k0001", "k0999", "k1233", "k1234", "k1235", "k1999"} {
		got, gen, _, err := s.LookupSecret(name)
		if err != nil || gen != 9 || !bytes.Equal(got.Value, sec.Secrets[name].Value) {
			t.Fatalf("%s: generation %d, %v", name, gen, err)
		}
	}
	for _, name := range []string{"a", "k", "k0000x", "k2000", "z"} {
		if _, _, _, err := s.LookupSecret(name); !errors.Is(err, store.ErrSecretNotFound) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	_ = o
}

// TestSecretsForged: a secrets.age written by anyone without the store key (the public
// key is enough to encrypt one) is store_corrupt, whole or one entry at a time; so is an
// entry moved from another generation, or one dropped.
func TestSecretsForged(t *testing.T) {
	o, s := newStore(t)
	defer s.Close()
	sec, _ := s.LoadSecrets()
	sec.Add("k", []byte("FAKE-forged-0001"), "", time.Now())
	sec.Add("m", []byte("FAKE-forged-0002"), "", time.Now())
	sec.Generation = 3
	if err := s.Save(store.Commit{Secrets: sec}, nil); err != nil {
		t.Fatal(err)
	}
	plain := decryptStoreFile(t, o, store.SecretsFile)
	lines := strings.Split(plain, "\n")
	for what, doc := range map[string]string{
		"a value changed":         strings.Replace(plain, "RkFLRS1mb3JnZWQtMDAwMQ==", "RkFLRS1mb3JnZWQtMDAwOQ==", 1),
		"the generation moved on": strings.Replace(plain, `"generation":3`, `"generation":4`, 1),
		"an entry dropped":        lines[0] + "\n" + strings.TrimSuffix(lines[1], ",") + "\n" + lines[3] + "\n",
		"another file's MACs":     strings.Replace(plain, "hmac-sha256:", "hmac-sha256:0", 1),
	} {
		writeEncrypted(t, o, store.SecretsFile, doc)
		if _, err := s.LoadSecrets(); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: whole read: %v", what, err)
		}
	}
	writeEncrypted(t, o, store.SecretsFile, strings.Replace(plain, "RkFLRS1mb3JnZWQtMDAwMQ==", "RkFLRS1mb3JnZWQtMDAwOQ==", 1))
	if _, _, _, err := s.LookupSecret("k"); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("a changed value passed a lookup: %v", err)
	}
}

// decryptStoreFile returns the plaintext of a store file, as age -d would.
func decryptStoreFile(t *testing.T, o store.Options, name string) string {
	t.Helper()
	idText, _ := os.ReadFile(filepath.Join(o.Dir, store.IdentityFile))
	ids, _ := age.ParseIdentities(bytes.NewReader(idText))
	ct, _ := os.ReadFile(filepath.Join(o.Dir, name))
	r, err := age.Decrypt(bytes.NewReader(ct), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	return string(b)
}

// TestKeyCache: a key cache opens the store key only for the store.key.age and identity
// it was written for; any other cache, or the same one after store.key.age changed (even
// to the same key, encrypted again), is ignored, and the key comes from the file.
func TestKeyCache(t *testing.T) {
	o, s := newStore(t)
	want, _ := s.Key(store.KeyState)
	id, _ := s.KeyID()
	cache := s.KeyCache()
	s.Close()
	if strings.Contains(cache, fmt.Sprintf("%x", want)) || !strings.HasPrefix(cache, "skc1:") {
		t.Fatalf("cache %q", cache)
	}
	open := func() *store.Store {
		t.Helper()
		st, err := store.Open(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	if !st.UseKeyCache(cache, id) {
		t.Fatal("the cache written for this store.key.age is not taken")
	}
	if got, _ := st.Key(store.KeyState); !bytes.Equal(got, want) {
		t.Fatal("the cache gives another key")
	}
	st.Close()
	flipped := cache[:len(cache)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", cache[len(cache)-1])+1)%16])
	for name, c := range map[string][2]string{
		"a changed cache": {flipped, id},
		"another key id":  {cache, "sk1:0000000000000000"},
		"no prefix":       {strings.TrimPrefix(cache, "skc1:"), id},
		"short":           {cache[:20], id},
	} {
		st := open()
		if st.UseKeyCache(c[0], c[1]) {
			t.Errorf("%s is taken", name)
		}
		st.Close()
	}
	// store.key.age encrypted again, to the same key: the cache no longer fits it.
	plain, err := exec.Command("age", "-d", "-i", filepath.Join(o.Dir, store.IdentityFile), filepath.Join(o.Dir, store.StoreKeyFile)).Output()
	if err != nil {
		t.Skipf("age CLI: %v", err)
	}
	ids, _ := os.ReadFile(filepath.Join(o.Dir, store.IdentityFile))
	parsed, _ := age.ParseIdentities(bytes.NewReader(ids))
	var ct bytes.Buffer
	w, _ := age.Encrypt(&ct, parsed[0].(*age.X25519Identity).Recipient())
	w.Write(plain)
	w.Close()
	if err := os.WriteFile(filepath.Join(o.Dir, store.StoreKeyFile), ct.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	st = open()
	defer st.Close()
	if st.UseKeyCache(cache, id) {
		t.Fatal("the cache is taken for a store.key.age it was not written for")
	}
	if got, _ := st.Key(store.KeyState); !bytes.Equal(got, want) {
		t.Fatal("the key decrypted from store.key.age differs")
	}
}

// TestIntentClaims: a command removes only the intents it claimed; one written after its
// claim stays for the next command.
func TestIntentClaims(t *testing.T) {
	o, s := newStore(t)
	defer s.Close()
	if err := s.WriteIntent([]byte("first\n")); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.ClaimIntent()
	if err != nil || claimed == "" || s.HasIntent() {
		t.Fatalf("claim: %q %v (pending %v)", claimed, err, s.HasIntent())
	}
	if err := s.WriteIntent([]byte("second\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveIntents([]string{claimed}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(o.Dir, store.IntentFile)); err != nil || string(b) != "second\n" {
		t.Fatalf("the intent written after the claim: %q %v", b, err)
	}
	if _, err := os.Stat(claimed); !os.IsNotExist(err) {
		t.Fatalf("the claimed intent is still there: %v", err)
	}
}
