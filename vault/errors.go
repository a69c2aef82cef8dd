package vault

import (
	"errors"
	"fmt"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/guard"
	"github.com/agent-secrets/secrets/internal/safefile"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/policy"
	"github.com/agent-secrets/secrets/rotate"
	"github.com/agent-secrets/secrets/store"
)

// ErrUsage matches every mistake in how a use case was asked: a missing or extra
// argument, a bad flag value, a request that makes no sense (a reset of a log that
// verifies).
var ErrUsage = errors.New("usage")

type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == ErrUsage }

// Usagef returns an error matching ErrUsage with a message.
func Usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// codes maps the errors of the packages the vault composes to the stable codes of
// DESIGN.md section 6, first match first: a *safefile.PermError met while appending to
// the audit log is insecure_permissions with its chmod fix, not audit_failed.
var codes = []struct {
	err  error
	code string
}{
	{ErrUsage, "usage"},
	{store.ErrInvalidName, "invalid_name"},
	{store.ErrInvalidValue, "invalid_value"},
	{lease.ErrInvalidTTL, "invalid_ttl"},
	{lease.ErrTTLExceedsMax, "ttl_exceeds_max"},
	{policy.ErrTTLExceedsMax, "ttl_exceeds_max"},
	{policy.ErrInvalid, "invalid_policy"},
	{policy.ErrDeliveryNotAllowed, "delivery_not_allowed"},
	{policy.ErrCallerNotAllowed, "caller_not_allowed"},
	{policy.ErrUsesExhausted, "uses_exhausted"},
	{policy.ErrCommandNotAllowed, "command_not_allowed"},
	{policy.ErrInjectNotAllowed, "inject_not_allowed"},
	{ErrInjectUnavailable, "inject_unavailable"},
	{ErrApprovalRequired, "approval_required"},
	{ErrApprovalDenied, "approval_denied"},
	{store.ErrNotInitialized, "not_initialized"},
	{store.ErrAlreadyInitialized, "already_initialized"},
	{store.ErrInvalidConfig, "invalid_config"},
	{store.ErrSecretNotFound, "secret_not_found"},
	{lease.ErrNotFound, "lease_not_found"},
	{store.ErrSecretExists, "secret_exists"},
	{envfile.ErrExists, "file_exists"},
	{ErrPathInStore, "path_in_store"},
	{envfile.ErrInvalid, "invalid_project_file"},
	{envfile.ErrNotEnvSafe, "invalid_value"},
	{store.ErrLocked, "store_locked"},
	{store.ErrDecrypt, "decrypt_failed"},
	{ErrRollback, "secrets_rollback"},
	{ErrAuditRollback, "audit_rollback"},
	{store.ErrCorrupt, "store_corrupt"},
	{safefile.ErrInsecure, "insecure_permissions"},
	{audit.ErrTampered, "audit_tampered"},
	{audit.ErrFailed, "audit_failed"},
	{killswitch.ErrLockdown, "lockdown"},
	{ErrRotationInProgress, "rotation_in_progress"},
	{rotate.ErrFailed, "rotation_failed"},
	{safefile.ErrWrite, "write_failed"},
	{guard.ErrNotPermitted, "not_permitted"},
	{guard.ErrUnavailable, "guard_unavailable"},
}

// Code returns the stable error code of err, or "generic_error" for an error no table row
// matches.
func Code(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "generic_error"
}

// Codes lists every code Code can return, generic_error included, for the face's table
// of exit statuses and its test.
func Codes() []string {
	seen := map[string]bool{"generic_error": true}
	out := []string{"generic_error"}
	for _, c := range codes {
		if !seen[c.code] {
			seen[c.code] = true
			out = append(out, c.code)
		}
	}
	return out
}

// CheckName fails with an error matching store.ErrInvalidName unless name is a valid
// secret name. The message does not repeat the name, which might be a value pasted in
// the wrong place.
func CheckName(name string) error { return store.CheckName(name) }

// fixed is an error that knows what fixes it better than its code's general fix does. The
// face prints Fix() as the hint.
type fixed struct {
	error
	fix string
}

func (e fixed) Unwrap() error { return e.error }

// Fix returns what to do about the error.
func (e fixed) Fix() string { return e.fix }
