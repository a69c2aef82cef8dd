package store

import (
	"errors"
	"fmt"
	"sort"
	"time"

	names "github.com/agent-secrets/secrets/internal/name"
)

// Errors of the secrets document.
var (
	// ErrSecretNotFound reports a name that is not in the store.
	ErrSecretNotFound = errors.New("secret not found")
	// ErrSecretExists reports an add of a name that is already stored.
	ErrSecretExists = errors.New("secret exists")
	// ErrInvalidName reports a name outside NamePattern.
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidValue reports an empty value or one over MaxValueSize.
	ErrInvalidValue = errors.New("invalid value")
)

// MaxValueSize is the largest value a secret may hold.
const MaxValueSize = 1 << 20

// CheckName fails with ErrInvalidName unless name matches ^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$.
// The message does not repeat the name, which might be a value pasted in the wrong place.
func CheckName(name string) error {
	if !validName(name) {
		return fmt.Errorf("%w: a name is 1-128 characters of A-Z a-z 0-9 _ . - / and starts with a letter or digit (got %d bytes)", ErrInvalidName, len(name))
	}
	return nil
}

// CheckValue fails with ErrInvalidValue for an empty value or one over MaxValueSize.
func CheckValue(v []byte) error {
	switch {
	case len(v) == 0:
		return fmt.Errorf("%w: the value is empty", ErrInvalidValue)
	case len(v) > MaxValueSize:
		return fmt.Errorf("%w: the value is larger than 1 MiB", ErrInvalidValue)
	}
	return nil
}

func validName(s string) bool { return names.Valid(s) }

// Get returns the named secret or ErrSecretNotFound.
func (s *Secrets) Get(name string) (*Secret, error) {
	sec, ok := s.Secrets[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrSecretNotFound, names.Shown(name))
	}
	return sec, nil
}

// Add stores a new secret. It fails with ErrInvalidName, ErrInvalidValue or ErrSecretExists
// and then changes nothing.
func (s *Secrets) Add(name string, value []byte, rotateVia string, now time.Time) (*Secret, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if _, ok := s.Secrets[name]; ok {
		return nil, fmt.Errorf("%w: %q", ErrSecretExists, name)
	}
	if err := CheckValue(value); err != nil {
		return nil, err
	}
	now = now.UTC()
	sec := &Secret{Value: value, CreatedAt: now, UpdatedAt: now, RotateVia: rotateVia}
	s.Secrets[name] = sec
	return sec, nil
}

// Set replaces the value of an existing secret and keeps its metadata. It fails with
// ErrSecretNotFound or ErrInvalidValue and then changes nothing.
func (s *Secrets) Set(name string, value []byte, now time.Time) (*Secret, error) {
	sec, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	if err := CheckValue(value); err != nil {
		return nil, err
	}
	sec.Value = value
	sec.UpdatedAt = now.UTC()
	return sec, nil
}

// Remove deletes a secret or fails with ErrSecretNotFound.
func (s *Secrets) Remove(name string) error {
	if _, err := s.Get(name); err != nil {
		return err
	}
	delete(s.Secrets, name)
	return nil
}

// Names returns the secret names in order.
func (s *Secrets) Names() []string {
	names := make([]string, 0, len(s.Secrets))
	for n := range s.Secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
