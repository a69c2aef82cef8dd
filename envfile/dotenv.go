package envfile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrNotEnvSafe reports a value that no environment variable can hold (a NUL byte).
var ErrNotEnvSafe = errors.New("value cannot be an environment variable")

// Quote returns the dotenv form of value for KEY=<form>. It always reads back byte for
// byte, executing nothing, when the file is sourced by bash. portable reports whether
// the common dotenv parsers (godotenv, Node's dotenv, python-dotenv) also read it back
// exactly; TestDotenvParsers proves both claims against the real parsers.
//
// Single quotes are taken where they can be: bash, godotenv and Node read them
// literally, while python-dotenv interprets \\ and \' and expands ${VAR} inside them.
// Otherwise double quotes, when the value holds none of the characters whose meaning
// inside double quotes differs between the parsers. Otherwise the value is written for
// bash alone, each single quote closing the quoted run, escaped, and reopening it, and
// portable is false; such a line can stop
// godotenv and python-dotenv from reading the rest of the file.
func Quote(value []byte) (form string, portable bool, err error) {
	if bytes.IndexByte(value, 0) >= 0 {
		return "", false, fmt.Errorf("%w: it contains a NUL byte", ErrNotEnvSafe)
	}
	v := string(value)
	textual := utf8.ValidString(v) && !strings.ContainsRune(v, '\r')
	switch {
	case textual && singleQuotable(v):
		return "'" + v + "'", true, nil
	case textual && !strings.ContainsAny(v, "\"\\$`\n"):
		return `"` + v + `"`, true, nil
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'", false, nil
}

// singleQuotable reports whether '<v>' reads back as v in all four parsers.
func singleQuotable(v string) bool {
	if strings.ContainsRune(v, '\'') || strings.Contains(v, "${") || strings.HasSuffix(v, `\`) {
		return false
	}
	return !strings.Contains(v, `\\`) // python-dotenv turns \\ into \ (and \' can no longer occur)
}
