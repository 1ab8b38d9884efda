package api

import (
	"context"
	"testing"
)

// TestOpenAPIDocumentBuilds builds the document of every documented
// operation and validates it with kin-openapi.
func TestOpenAPIDocumentBuilds(t *testing.T) {
	t.Parallel()
	if _, err := newOpenAPI(context.Background(), "test", operations()); err != nil {
		t.Fatal(err)
	}
}
