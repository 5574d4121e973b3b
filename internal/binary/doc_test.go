package binary

import (
	"os"
	"strings"
	"testing"
)

const specPath = "../../docs/binary-protocol.md"

// TestSpecTablesUpToDate checks that the token tables in the specification
// are the ones in the code: after changing the dictionary, run
// `go generate ./internal/binary`.
func TestSpecTablesUpToDate(t *testing.T) {
	doc, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(doc), TablesBegin)
	j := strings.Index(string(doc), TablesEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated-section markers", specPath)
	}
	if got := string(doc[i : j+len(TablesEnd)]); got != TablesMarkdown() {
		t.Fatalf("%s: token tables are stale; run go generate ./internal/binary", specPath)
	}
}

// TestTokensNeedNoEscaping checks an assumption of the XML-size bound:
// no token string contains a character XML escapes.
func TestTokensNeedNoEscaping(t *testing.T) {
	for _, e := range std.strs {
		if escCount(e.s) != 0 {
			t.Errorf("string token %q needs escaping", e.s)
		}
	}
	for _, e := range std.attrs {
		if escCount(e.name) != 0 {
			t.Errorf("attribute token %q needs escaping", e.name)
		}
	}
}
