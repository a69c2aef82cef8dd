package store

import (
	"errors"
	"fmt"
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
	// ErrInvalidConfig means config.json holds a key with an invalid value.
	ErrInvalidConfig = errors.New("invalid config")
)

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
