package tfstate

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/shardform/shardform/domain"
)

// StateMeta is what the service reads from a state file: the fields that
// say whether a write continues the stored history.
type StateMeta struct {
	// Serial increases with every change Terraform makes to the state.
	Serial int64
	// Lineage is set when a state is created and never changes after.
	Lineage string
}

// MaxLineageLength bounds a state's lineage (Terraform writes a UUID).
const MaxLineageLength = 255

// ParseStateMeta reads "serial" and "lineage" from a Terraform state file
// (JSON, format version 4 or any other with the same two fields). The
// serial must be a whole number from 0 to 2^63-1, the lineage a non-empty
// line of at most MaxLineageLength characters. Errors are
// *domain.ValidationError naming the field.
func ParseStateMeta(data []byte) (StateMeta, error) {
	var doc struct {
		Serial  json.RawMessage `json:"serial"`
		Lineage json.RawMessage `json:"lineage"`
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return StateMeta{}, domain.Invalid("state", "must be a Terraform state file (a JSON object)")
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return StateMeta{}, domain.Invalid("state", "must be a Terraform state file (valid JSON)")
	}
	var m StateMeta
	if len(doc.Serial) == 0 || string(doc.Serial) == "null" {
		return StateMeta{}, domain.Invalid("serial", "is required")
	}
	// A JSON number in its integer form only: digits, no sign, fraction or exponent.
	n, err := strconv.ParseInt(string(doc.Serial), 10, 64)
	if err != nil || doc.Serial[0] < '0' || doc.Serial[0] > '9' {
		return StateMeta{}, domain.Invalid("serial", "must be a whole number from 0 to %d", int64(^uint64(0)>>1))
	}
	m.Serial = n
	if len(doc.Lineage) == 0 || string(doc.Lineage) == "null" {
		return StateMeta{}, domain.Invalid("lineage", "is required")
	}
	if err := json.Unmarshal(doc.Lineage, &m.Lineage); err != nil {
		return StateMeta{}, domain.Invalid("lineage", "must be a string")
	}
	if m.Lineage == "" {
		return StateMeta{}, domain.Invalid("lineage", "is required")
	}
	if err := domain.CheckText("lineage", m.Lineage, MaxLineageLength); err != nil {
		return StateMeta{}, err
	}
	return m, nil
}
