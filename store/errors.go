package store

import (
	"errors"
	"fmt"
	"io/fs"
)

// Sentinel errors. main maps each to a stable error code with errors.Is.
var (
	// ErrNotInitialized means the directory holds no store: run `secrets init`.
	ErrNotInitialized = errors.New("store not initialized")
	// ErrAlreadyInitialized means `init` found an existing store and changed nothing.
	ErrAlreadyInitialized = errors.New("store already initialized")
	// ErrLocked means the store lock was not acquired before the deadline.
	ErrLocked = errors.New("store locked")
	// ErrDecrypt means an age file could not be decrypted (wrong identity, flipped or cut bytes).
	ErrDecrypt = errors.New("decrypt failed")
	// ErrCorrupt means a file decrypted (or was read) but its content is not a valid document.
	ErrCorrupt = errors.New("store corrupt")
	// ErrInsecure means a store file or directory is reachable by other users, owned by
	// another user, or a symlink. It is refused, never repaired silently.
	ErrInsecure = errors.New("insecure permissions")
	// ErrInvalidConfig means config.json holds a key with an invalid value.
	ErrInvalidConfig = errors.New("invalid config")
)

// PermError reports a file refused for its mode, owner or type. It matches ErrInsecure.
type PermError struct {
	Path   string
	Mode   fs.FileMode
	Reason string // "mode", "owner", "symlink", "type"
}

func (e *PermError) Error() string {
	switch e.Reason {
	case "symlink":
		return fmt.Sprintf("%s is a symlink; store files are never followed through links", e.Path)
	case "owner":
		return fmt.Sprintf("%s is owned by another user", e.Path)
	case "type":
		return fmt.Sprintf("%s is not a regular file", e.Path)
	}
	return fmt.Sprintf("permissions %#o for %s are too open; it must not be accessible by group or others",
		e.Mode.Perm(), e.Path)
}

// Fix returns the command that repairs the problem.
func (e *PermError) Fix() string {
	switch e.Reason {
	case "symlink":
		return fmt.Sprintf("replace the link %s with the real file", e.Path)
	case "owner":
		return fmt.Sprintf("chown $(id -u) %s", e.Path)
	case "type":
		return fmt.Sprintf("move %s aside; it should be a regular file", e.Path)
	}
	if e.Mode.IsDir() {
		return fmt.Sprintf("chmod 700 %s", e.Path)
	}
	return fmt.Sprintf("chmod 600 %s", e.Path)
}

func (e *PermError) Is(target error) bool { return target == ErrInsecure }

// ConfigError names the config.json key whose value is invalid. It matches ErrInvalidConfig.
type ConfigError struct {
	Path string
	Key  string
	Err  error
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Path, e.Key, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// Fix returns a hint naming the key.
func (e *ConfigError) Fix() string {
	if e.Key == "" {
		return fmt.Sprintf("fix the JSON in %s", e.Path)
	}
	return fmt.Sprintf("fix %q in %s (durations are strings like \"1h\")", e.Key, e.Path)
}
