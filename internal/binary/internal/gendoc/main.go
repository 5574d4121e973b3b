// Command gendoc writes the token tables of the binary encoding's
// dictionary into the specification (docs/binary-protocol.md), between the
// markers binary.TablesBegin and binary.TablesEnd. It runs from
// `go generate ./internal/binary`.
package main

import (
	"fmt"
	"os"

	"github.com/parley-im/parley/internal/binary"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gendoc path/to/binary-protocol.md")
		os.Exit(2)
	}
	path := os.Args[1]
	doc, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
	out, ok := binary.ReplaceTables(string(doc), binary.TablesMarkdown())
	if !ok {
		fmt.Fprintf(os.Stderr, "gendoc: %s lacks the generated-section markers\n", path)
		os.Exit(1)
	}
	if out == string(doc) {
		return
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}
