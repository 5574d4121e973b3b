package binary

import (
	"fmt"
	"strings"
)

// Markers around the generated section of docs/binary-protocol.md.
const (
	TablesBegin = "<!-- BEGIN GENERATED TABLES: go generate ./internal/binary writes this section; do not edit it by hand -->"
	TablesEnd   = "<!-- END GENERATED TABLES -->"
)

//go:generate go run ./internal/gendoc ../../docs/binary-protocol.md

// TablesMarkdown renders the dictionary of this build as the token tables
// section of docs/binary-protocol.md, markers included.
func TablesMarkdown() string { return tablesMarkdown(std) }

func tablesMarkdown(d *dictionary) string {
	var b strings.Builder
	b.WriteString(TablesBegin + "\n\n")
	b.WriteString("#### Versions\n\n")
	b.WriteString("| version | qname tokens | attribute tokens | string tokens | fingerprint |\n|---:|---:|---:|---:|---|\n")
	for v := 1; v <= d.latest; v++ {
		fmt.Fprintf(&b, "| %d | %d | %d | %d | `%s` |\n", v, d.nq[v], d.na[v], d.ns[v], d.fingerprintHex(v))
	}
	b.WriteString("\n#### Qualified-name tokens\n\n")
	b.WriteString("Wire: tokens 0–111 are the head byte `0x10+t` (or `0x90+t` for an empty element); ")
	b.WriteString("later ones are `0x01` followed by uvarint(t−112). *b64*: text content written as bytes (§4.2).\n\n")
	b.WriteString("| t | wire | namespace | local name | since | content |\n|---:|---|---|---|---:|---|\n")
	for i, e := range d.qnames {
		wire := fmt.Sprintf("`%02X`/`%02X`", headFull+i, headEmpty+i)
		if i >= qnamePage0 {
			wire = "`01 " + hexBytes(appendUvarint(nil, uint64(i-qnamePage0))) + "`"
		}
		content := ""
		if e.b64 {
			content = "b64"
		}
		if e.nameIsValue {
			content = "name is a value"
		}
		fmt.Fprintf(&b, "| %d | %s | `%s` | `%s` | %d | %s |\n", i, wire, e.ns, e.local, e.since, content)
	}
	b.WriteString("\n#### Attribute tokens\n\n")
	b.WriteString("Wire: tokens 0–252 are the byte `0x03+t`; later ones are `0x02` followed by uvarint(t−253). ")
	b.WriteString("*class* is encoder policy (§5.4), not part of the wire contract.\n\n")
	b.WriteString("| t | wire | name | class | since |\n|---:|---|---|---|---:|\n")
	classes := [...]string{classValue: "value", classID: "id", classJID: "JID", classText: "text"}
	for i, e := range d.attrs {
		wire := fmt.Sprintf("`%02X`", anameToken+i)
		if i >= attrPage0 {
			wire = "`02 " + hexBytes(appendUvarint(nil, uint64(i-attrPage0))) + "`"
		}
		fmt.Fprintf(&b, "| %d | %s | `%s` | %s | %d |\n", i, wire, e.name, classes[e.class], e.since)
	}
	b.WriteString("\n#### String tokens\n\n")
	b.WriteString("Wire: as a value, tokens 0–127 are the byte `0x80+t` and later ones `0x09` followed by uvarint(t−128); ")
	b.WriteString("as a namespace reference, uvarint(t+2).\n\n")
	b.WriteString("| t | value wire | string | since |\n|---:|---|---|---:|\n")
	for i, e := range d.strs {
		wire := fmt.Sprintf("`%02X`", vToken+i)
		if i >= strPage0 {
			wire = "`09 " + hexBytes(appendUvarint(nil, uint64(i-strPage0))) + "`"
		}
		fmt.Fprintf(&b, "| %d | %s | `%s` | %d |\n", i, wire, e.s, e.since)
	}
	b.WriteString("\n" + TablesEnd)
	return b.String()
}

func hexBytes(p []byte) string {
	parts := make([]string, len(p))
	for i, c := range p {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, " ")
}

// ReplaceTables returns doc with its generated section replaced by tables;
// ok is false if doc lacks the markers.
func ReplaceTables(doc, tables string) (string, bool) {
	i := strings.Index(doc, TablesBegin)
	j := strings.Index(doc, TablesEnd)
	if i < 0 || j < i {
		return doc, false
	}
	return doc[:i] + tables + doc[j+len(TablesEnd):], true
}
