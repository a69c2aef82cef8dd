package vault

import (
	"errors"
	"fmt"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/store"
)

// ErrRollback reports a secrets.age older than the log knows: an older copy put back,
// which would bring back removed and rotated values. It is refused, never read.
var ErrRollback = errors.New("secrets rollback")

// RollbackError says which generation the log recorded and which the file holds.
type RollbackError struct {
	Path      string
	File, Log uint64
	Version   int // the file's format version
}

func (e *RollbackError) Error() string {
	if e.Version < store.SecretsVersion {
		return fmt.Sprintf("%s is in the format of an older release (version %d), but this store was converted: an older copy was put back", e.Path, e.Version)
	}
	return fmt.Sprintf("%s is at generation %d but the log records generation %d: an older copy was put back", e.Path, e.File, e.Log)
}

// Is makes a *RollbackError match ErrRollback.
func (e *RollbackError) Is(target error) bool { return target == ErrRollback }

// Fix says what to do about it.
func (e *RollbackError) Fix() string {
	return "restore the newest secrets.age (generation " + fmt.Sprint(e.Log) + ") from a backup; the older one is refused, never read"
}

// loadSecrets reads all of secrets.age (or the staged file a View rolls forward to) and
// checks its generation against the log's.
func (tx *Tx) loadSecrets() (*store.Secrets, error) {
	var sec *store.Secrets
	var err error
	if tx.secretsPath != "" {
		sec, err = tx.st.LoadSecretsFile(tx.secretsPath)
	} else {
		sec, err = tx.st.LoadSecrets()
	}
	if err != nil {
		return nil, err
	}
	if err := tx.checkGeneration(sec.Generation, sec.ReadVersion()); err != nil {
		return nil, err
	}
	return sec, nil
}

// checkGeneration compares a secrets.age's generation with the one the log recorded. A
// store that is not converted yet has no record to compare with.
func (tx *Tx) checkGeneration(gen uint64, version int) error {
	if tx.legacy || tx.broken != nil {
		// Not converted yet, there is no record to compare with; on a damaged log the
		// state is the part before the damage, which nothing is handed out against.
		return nil
	}
	want := tx.state.SecretsGeneration
	path := tx.st.Path(store.SecretsFile)
	switch {
	case version < store.SecretsVersion || gen < want:
		return &RollbackError{Path: path, File: gen, Log: want, Version: version}
	case gen > want:
		return fmt.Errorf("%w: %s is at generation %d but the log records only %d: the log lost the record of a write", audit.ErrTampered, path, gen, want)
	}
	return nil
}

// findStagedSecrets rolls forward a secrets.age that a command staged and recorded in the
// log but did not rename into place before it stopped (store.Save writes it in that
// order): a write publishes it and records that, a View reads it instead. Only a staged
// file of the generation the log names, checked under the store key, is taken.
func (tx *Tx) findStagedSecrets() error {
	want := tx.state.SecretsGeneration
	path, err := tx.st.StagedSecrets(want)
	if err != nil || path == "" {
		return err
	}
	gen, version, err := tx.st.SecretsGeneration()
	if err == nil && version == store.SecretsVersion && gen >= want {
		return nil // secrets.age is already there; the staged file is dead
	}
	if !tx.writes() {
		tx.secretsPath = path
		return nil
	}
	if err := tx.st.PublishStaged(path); err != nil {
		return err
	}
	tx.Record(audit.Entry{Event: "secrets_recovered", OK: true,
		Detail: fmt.Sprintf("a command stopped after recording generation %d of secrets.age and before renaming it into place; the staged file was put in place", want)})
	return nil
}
