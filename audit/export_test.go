package audit

// EncodeEntry is encodeEntry, for the fuzz test that holds it to encoding/json.
var EncodeEntry = encodeEntry
