package store

import (
	"bytes"
	"encoding/json"
)

// marshal encodes a document indented, so `age -d` of a store file is readable, and
// without HTML escaping, so values round-trip as written.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
